"""Kafka mode end to end: Faust workers on a real Kafka-protocol broker (Tansu).

The reference everywhere is the embedded mode (the PostgreSQL log and one
processor) on the same input: Kafka mode must give the same profiles and the
same triggers, whatever happens to the workers or the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from engage.config import Settings
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.codec import CodecError, TriggerCodec
from events.ingest import parse_line
from events.log import TOUCHPOINTS, Entry
from events.model import Touchpoint, TriggerEvent
from events.sealing import unseal_texts
from events.timefmt import parse_iso
from tests.conftest import TEST_PARTITIONS
from tests.helpers import profiles_by_id
from tests.kafka_workers import (
    WorkerProcess,
    applied,
    kill_one_mid_stream,
    outbox_count,
    topic_triggers,
    wait_until_done,
)
from tests.unit.test_rules_support import History

POISON = Entry("poison-1", "thanks", b"\xc3\x01not-an-avro-record", 0, "purchase")


def crafted() -> list[Touchpoint]:
    """The histories of the rules tests (tests/unit/test_rules_default_pack.py,
    tests/integration/test_triggers.py), one customer each, so every rule and
    control fires (or is held) somewhere."""
    out: list[Touchpoint] = []

    def take(h: History) -> None:
        out.extend(h.events)

    h = History("thanks")
    for day, amount in ((0, 20), (1, 30), (2, 40)):
        h.purchase(day, amount)
    take(h)
    h = History("ann")
    h.purchase(0, 600)
    h.purchase(2, 500)
    h.purchase(3, 900)
    take(h)
    h = History("fatigue")
    for day in (0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104):
        h.opened(day)
    take(h)
    h = History("clicker")
    for day in (0, 1, 2, 3):
        h.opened(day)
    h.clicked(3.5)
    h.opened(4)
    take(h)
    h = History("unsub")
    h.purchase(0, 10)
    h.unsubscribe(5)
    h.case_closed(6, "k-1")
    h.survey(7, 3)
    take(h)
    h = History("quiet")
    h.purchase(0, 20)
    h.visit(3.5)
    take(h)
    h = History("rearm")
    h.purchase(0, 20)
    h.opened(29)
    h.visit(70)
    take(h)
    h = History("winback")
    h.purchase(0, 20)
    h.purchase(10, 20)
    h.visit(50)
    take(h)
    h = History("support")
    h.case_closed(0, "case-1")
    h.case_closed(1, "case-1")
    h.case_closed(2, "case-2")
    take(h)
    h = History("surveys")
    h.survey(0, 6)
    h.survey(1, 7)
    h.survey(2, 2, survey="csat")
    h.survey(3, 0)
    take(h)
    h = History("capped")
    h.purchase(0, 1200)
    for day in (0.1, 1, 2, 3, 4):
        h.opened(day)
    h.case_closed(4.5, "case-1")
    h.opened(7.5)
    take(h)
    h = History("late")  # moves the clock on, so the timers above fall due
    h.visit(300)
    take(h)
    return out


def history(crafted: list[Touchpoint], spec: HistorySpec | None) -> list[Touchpoint]:
    """The crafted histories merged with a synthetic one, in time order.

    In time order because that is the input on which the engine promises the
    same triggers however the log is cut into batches (README, known
    limitations): a Faust worker cuts batches differently from the embedded
    loop."""
    events = list(crafted)
    if spec is not None:
        for i, line in enumerate(generate_lines(spec)):
            item = parse_line(line, i)
            assert isinstance(item, Touchpoint)
            events.append(item)
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def _publish(engine: Engine, events: list[Touchpoint]) -> None:
    publisher = engine.publisher()
    for start in range(0, len(events), 2_000):
        publisher.publish_events(events[start : start + 2_000], [], "history")
    engine.stream.append(TOUCHPOINTS, [POISON])


NOW = "2026-06-15T00:00:00Z"
"""Stands in for the wall time in the workers and the embedded run alike:
both then move every partition's clock there by the same clock records."""


def _embedded(
    settings: Settings, events: list[Touchpoint]
) -> tuple[dict[str, Any], list[TriggerEvent], int]:
    with Engine.open(settings) as engine:
        _publish(engine, events)
        engine.processor().run(until_idle=True, now=parse_iso(NOW))
        decoded = TriggerCodec().decode_many([r.payload for r in engine.log.find_triggers()])
        triggers = [t for t in decoded if not isinstance(t, CodecError)]
        return profiles_by_id(engine), sorted(triggers, key=_key), engine.dead_letters.count()


def _key(t: TriggerEvent) -> str:
    return t.trigger_id


def _dlq_records(engine: Engine) -> list[dict[str, Any]]:
    assert engine.kafka is not None
    heads = engine.kafka.heads("dlq")
    records = engine.kafka.read("dlq", dict.fromkeys(heads, 0), 10_000)
    return [orjson.loads(r.payload) for r in records]


def _run_workers(
    settings: Settings, tmp_path: Path, count: int, *extra: str
) -> list[WorkerProcess]:
    """A short session timeout: a killed worker's partitions move sooner, and
    Tansu holds a group join for about half of it."""
    return [
        WorkerProcess(
            settings, tmp_path / f"worker-{i}.log", "--session-timeout", "6", "--now", NOW, *extra
        )
        for i in range(count)
    ]


@pytest.fixture
def embedded_settings(fresh_database: Callable[[], str], tmp_path: Path) -> Settings:
    return Settings(fresh_database(), tmp_path / ".engage-embedded", None, TEST_PARTITIONS)


@pytest.mark.slow
def test_kafka_mode_equals_embedded_mode_on_the_rules_histories(
    kafka_settings: Settings, embedded_settings: Settings, tmp_path: Path
) -> None:
    events = history(crafted(), HistorySpec(customers=40, days=60, seed=11))
    want_profiles, want_triggers, want_dead = _embedded(embedded_settings, events)
    assert {t.rule_id for t in want_triggers} >= {
        "first-purchase-thank-you",
        "lifetime-spend-1000",
        "monthly-spend-500",
        "newsletter-fatigue",
        "inactive-30d",
        "win-back-90d",
        "feedback-after-support",
        "detractor-follow-up",
    }

    with Engine.open(kafka_settings) as engine:
        _publish(engine, events)
        # Kafka cannot refuse a repeated event_id: publish some of them again
        again = events[: len(events) // 3]
        report = engine.publisher().publish_events(again, [], "again")
        assert report.accepted == len(again)
        workers = _run_workers(kafka_settings, tmp_path, 1, "--batch-size", "500")
        try:
            wait_until_done(engine, workers)
        finally:
            for w in workers:
                w.stop()
        assert profiles_by_id(engine) == want_profiles
        triggers, on_topic = topic_triggers(engine)
        assert sorted(triggers, key=_key) == want_triggers
        assert on_topic == len(want_triggers), "no trigger twice on the topic"
        assert engine.dead_letters.count() == want_dead == 1
        (dlq,) = _dlq_records(engine)
        assert dlq["stage"] == "process" and dlq["raw"] == POISON.payload.hex()


def test_publish_rejections_reach_the_dlq_topic(kafka_settings: Settings) -> None:
    with Engine.open(kafka_settings) as engine:
        report = engine.publisher().publish_lines(['{"event_id": "x"}', "{bad"], "upstream")
        assert report.rejected == 2
        relay = engine.dlq_relay()
        assert relay is not None
        assert relay.drain() == 2
        assert relay.drain() == 0, "each dead letter is copied once"
        found = _dlq_records(engine)
        # the topic carries the raw text sealed (docs/privacy.md); the key opens it
        assert all(d["raw"].startswith("sealed:v1:") for d in found)
        opened = unseal_texts([d["raw"] for d in found], engine.keys)
        assert sorted(
            (d["source"], d["line"], raw) for d, raw in zip(found, opened, strict=True)
        ) == [
            ("upstream", 1, '{"event_id": "x"}'),
            ("upstream", 2, "{bad"),
        ]


def test_a_repeated_event_id_is_applied_once(kafka_settings: Settings) -> None:
    """The seen-ids claim runs in the batch transaction of the one pipeline."""
    h = History("dup")
    h.purchase(0, 700)
    h.purchase(1, 400)
    with Engine.open(kafka_settings) as engine:
        for _ in range(3):
            engine.publisher().publish_events(h.events, [], "again")
        processor = engine.processor(batch_size=2)  # the embedded loop over the Kafka log
        stats = processor.run(until_idle=True)
        assert stats.events == 2
        found = engine.store.get("dup")
        assert found is not None
        assert (found.event_count, found.order_count, found.lifetime_spend) == (2, 2, 1100.0)


@pytest.mark.slow
def test_a_worker_killed_mid_stream_is_replaced_by_the_survivor(
    kafka_settings: Settings, embedded_settings: Settings, tmp_path: Path
) -> None:
    events = history([], HistorySpec(customers=150, days=90, seed=23))
    want_profiles, want_triggers, _ = _embedded(embedded_settings, events)
    with Engine.open(kafka_settings) as engine:
        _publish(engine, events)
        total = len(events) + 1
        workers = _run_workers(kafka_settings, tmp_path, 2, "--batch-size", "100")
        try:
            kill_one_mid_stream(engine, workers, total, timeout=120.0)
        finally:
            for w in workers:
                w.stop()
        assert profiles_by_id(engine) == want_profiles
        triggers, on_topic = topic_triggers(engine)
        assert sorted(triggers, key=_key) == want_triggers
        # exactly-once record of the triggers: the outbox, one row per trigger; the
        # topic may hold a repeat only if the kill cut a relay between its append
        # and its mark (readers drop repeated ids)
        assert outbox_count(engine) == len(want_triggers)
        assert on_topic >= len(want_triggers)
        # the survivor took the dead worker's partitions, resuming from PostgreSQL
        resumed = [line for line in workers[1].output().splitlines() if "resumed from" in line]
        assert resumed and all(f"({p}, " in resumed[-1] for p in range(TEST_PARTITIONS))


@pytest.mark.slow
def test_workers_reconnect_after_a_broker_outage(
    fresh_database: Callable[[], str], embedded_settings: Settings, tmp_path: Path
) -> None:
    """Tansu here is memory-only, so its process cannot restart with its data;
    the outage cuts every client connection and refuses new ones for a while
    (``TcpGate``), which is what clients see of a broker restart."""
    from tests.kafka_broker import tansu

    events = history([], HistorySpec(customers=100, days=90, seed=31))
    want_profiles, want_triggers, _ = _embedded(embedded_settings, events)
    with tansu(gated=True) as (broker, gate):
        assert gate is not None
        settings = Settings(
            fresh_database(), tmp_path / ".engage", broker.bootstrap, TEST_PARTITIONS
        )
        with Engine.open(settings) as engine:
            _publish(engine, events)
            workers = _run_workers(settings, tmp_path, 1, "--batch-size", "100")
            try:
                deadline = time.monotonic() + 90
                while applied(engine) < len(events) // 4 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert applied(engine) < len(events), "the outage must land mid-stream"
                gate.close()
                time.sleep(6)
                gate.open()
                wait_until_done(engine, workers, timeout=180)
            finally:
                for w in workers:
                    w.stop()
            assert profiles_by_id(engine) == want_profiles
            triggers, _ = topic_triggers(engine)
            assert sorted(triggers, key=_key) == want_triggers


def test_a_poison_record_goes_to_the_dlq_and_its_partition_keeps_flowing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    h = History("thanks")
    first = h.purchase(0, 10)
    second = h.purchase(1, 20)
    with Engine.open(kafka_settings) as engine:
        engine.publisher().publish_events([first], [], "t")
        engine.stream.append(TOUCHPOINTS, [POISON])  # same key: same partition, in between
        engine.publisher().publish_events([second], [], "t")
        workers = _run_workers(kafka_settings, tmp_path, 1, "--batch-size", "1")
        try:
            wait_until_done(engine, workers)
        finally:
            for w in workers:
                w.stop()
        found = engine.store.get("thanks")
        assert found is not None and found.event_count == 2
        (letter,) = engine.dead_letters.list()
        assert letter.stage == "process" and (letter.source or "").startswith("touchpoints[")
        assert letter.raw == POISON.payload.hex()
        assert [d["raw"] for d in _dlq_records(engine)] == [POISON.payload.hex()]


def test_a_topic_with_another_partition_count_is_refused(kafka_settings: Settings) -> None:
    from engage.errors import ConfigError
    from events.adapters.kafka import KafkaLog

    KafkaLog(
        str(kafka_settings.kafka_bootstrap), 2, prefix=kafka_settings.kafka_topic_prefix
    ).close()
    with pytest.raises(ConfigError, match="has 2 partitions but the database was created for 4"):
        Engine.open(kafka_settings)


def test_the_cli_in_kafka_mode(kafka_settings: Settings, tmp_path: Path) -> None:
    """--kafka selects Kafka for any command; publish, status and triggers use it."""
    import subprocess
    import sys

    from tests.kafka_workers import worker_env

    env = worker_env(kafka_settings)
    bootstrap = env.pop("ENGAGE_KAFKA_BOOTSTRAP")

    def engage(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engage.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    no_kafka = engage("worker")
    assert no_kafka.returncode == 2
    assert no_kafka.stderr.strip().splitlines() == [
        "engage: error: engage worker needs Kafka: set ENGAGE_KAFKA_BOOTSTRAP or pass --kafka"
    ]
    line = orjson.dumps(
        {
            "event_id": "cli-1",
            "customer_id": "cli",
            "type": "purchase",
            "occurred_at": "2026-01-01T00:00:00Z",
            "properties": {"order_id": "o-1", "amount": 20},
        }
    ).decode()
    published = engage("--kafka", bootstrap, "publish", "-", stdin=line + "\n{bad\n")
    assert published.returncode == 1, published.stderr
    assert "accepted 1, duplicate 0, rejected 1" in published.stdout
    status = engage("--kafka", bootstrap, "status")
    assert status.returncode == 0, status.stderr
    assert "1 event in 4 partitions" in status.stdout
    assert "none yet (start `engage worker`)" in status.stdout  # Kafka mode's processor
    with Engine.open(kafka_settings) as engine:
        raws = [d["raw"] for d in _dlq_records(engine)]
        assert unseal_texts(raws, engine.keys) == ["{bad"] and "{bad" not in raws[0]
        engine.processor().run(until_idle=True)  # the embedded loop over the Kafka log
    listed = engage("--kafka", bootstrap, "triggers", "--json")
    assert listed.returncode == 0, listed.stderr
    (trigger,) = [orjson.loads(x) for x in listed.stdout.splitlines()]
    assert (trigger["rule_id"], trigger["caused_by"]) == ("first-purchase-thank-you", ["cli-1"])
