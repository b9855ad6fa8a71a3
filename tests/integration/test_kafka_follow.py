"""``engage triggers --json --follow`` in Kafka mode, on the kafka-python the
project pins: it printed the first trigger, then died with kafka-python
3.0.12's ``KeyError: TopicPartition(topic='engage.touchpoints', partition=0)``
on its first wait for new ones (``events.adapters.kafka.end_offsets``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import orjson
from packaging.requirements import Requirement

from engage.config import Settings
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.http_support import wait_for
from tests.kafka_workers import worker_env


def test_the_installed_kafka_client_is_the_pinned_one() -> None:
    (pin,) = [
        Requirement(r) for r in requires("engage") or [] if Requirement(r).name == "kafka-python"
    ]
    assert pin.specifier.contains(version("kafka-python")), (str(pin), version("kafka-python"))


def _purchase(n: int) -> list[str]:
    return lines(
        event(f"f-{n}", f"cust-{n}", "purchase", "2026-03-01T10:00:00Z", order_id=f"o{n}", amount=9)
    )


def test_follow_prints_new_triggers_and_stops_on_sigterm(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    with Engine.open(kafka_settings) as engine:
        publish(engine, _purchase(1))
        engine.processor().run(until_idle=True)
    log = tmp_path / "follow.log"
    out = log.open("w")
    follow = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "triggers", "--json", "--follow"],
        env=worker_env(kafka_settings),
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def customers() -> list[str]:
            return [orjson.loads(x)["customer_id"] for x in log.read_text().splitlines()]

        wait_for(lambda: customers() == ["cust-1"] or follow.poll() is not None, 120, "listing")
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
        for n in (2, 3):  # each one after the follower has waited on the topics' ends
            with Engine.open(kafka_settings) as engine:
                publish(engine, _purchase(n))
                engine.processor().run(until_idle=True)
            wait_for(
                lambda n=n: len(customers()) == n or follow.poll() is not None,
                120,
                f"trigger {n} to be followed",
            )
            assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
        assert customers() == ["cust-1", "cust-2", "cust-3"]
        follow.send_signal(signal.SIGTERM)
        code = follow.wait(timeout=60)
        errors = follow.stderr.read() if follow.stderr else ""
    finally:
        if follow.poll() is None:
            follow.kill()
        out.close()
    assert code == 0, errors
    assert "Traceback" not in errors and "KeyError" not in errors
