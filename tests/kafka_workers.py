"""Running ``engage worker`` processes against a test database and broker.

The workers are real subprocesses (the CLI a user runs), so a test can kill
one with SIGKILL; ``wait_until_done`` watches PostgreSQL and the topics until
every record is applied and the timers have settled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from consumers.pipeline import DEFAULT_CONSUMER
from engage.config import Settings
from engage.runtime import Engine
from events.codec import TriggerCodec
from events.log import TOUCHPOINTS
from events.model import TriggerEvent


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    assert settings.database_url and settings.kafka_bootstrap
    env.update(
        ENGAGE_DATABASE_URL=settings.database_url,
        ENGAGE_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        ENGAGE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
        ENGAGE_PARTITIONS=str(settings.partitions),
        ENGAGE_HOME=str(settings.home),
    )
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engage.cli", "worker", "--loglevel", "info", *extra],
            env=worker_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly as a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def applied(engine: Engine) -> int:
    return sum(engine.store.offsets(DEFAULT_CONSUMER, TOUCHPOINTS).values())


def wait_until_done(
    engine: Engine, workers: Sequence[WorkerProcess], timeout: float = 120.0
) -> None:
    """Every record applied, the outbox relayed, and no new trigger for a while
    (timer ticks run once a second after the partitions are caught up)."""
    assert engine.kafka is not None
    heads = sum(engine.kafka.heads(TOUCHPOINTS).values())
    deadline = time.monotonic() + timeout
    relay = engine.relay()
    last: tuple[int, int] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        if all(w.process.poll() is not None for w in workers):
            raise AssertionError(
                "every worker exited:\n" + "\n".join(w.output()[-3000:] for w in workers)
            )
        state = (applied(engine), outbox_count(engine))
        if state != last:
            last, stable_since = state, time.monotonic()
        elif state[0] >= heads and relay.pending() == 0 and time.monotonic() - stable_since > 3:
            return
        time.sleep(0.25)
    raise AssertionError(
        f"not done after {timeout}s: applied {last} of {heads}\n"
        + "\n".join(w.output()[-3000:] for w in workers)
    )


def kill_one_mid_stream(
    engine: Engine, workers: Sequence[WorkerProcess], total: int, timeout: float = 180.0
) -> None:
    """Once a quarter of ``total`` records is applied, SIGKILL the first
    worker; the others must finish the log."""
    deadline = time.monotonic() + 90
    while applied(engine) < total // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert applied(engine) < total, "the kill must land mid-stream"
    workers[0].kill()
    wait_until_done(engine, workers[1:], timeout=timeout)


def outbox_count(engine: Engine, arm: str = "treatment") -> int:
    """Outbox rows of one arm: the treatment arm's go to the topic; the held-out
    control arm's are recorded there only (never relayed)."""
    with engine.store.transaction() as tx:
        conn = tx._conn  # type: ignore[attr-defined]
        row = conn.execute("SELECT count(*) FROM trigger_outbox WHERE arm = %s", (arm,)).fetchone()
    return int(row[0])


def topic_triggers(engine: Engine) -> tuple[list[TriggerEvent], int]:
    """(the distinct triggers on the triggers topic, how many records it holds)."""
    from engage.cli.triggers import kafka_triggers
    from events.log import TRIGGERS

    assert engine.kafka is not None
    found = kafka_triggers(engine.kafka, TriggerCodec(), None, None, None, None)
    return found, sum(engine.kafka.heads(TRIGGERS).values())
