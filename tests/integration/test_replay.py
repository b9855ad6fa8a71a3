"""Replay: a new projection version equal to the live one, swapped in atomically, shadow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.replay import replay
from engage.config import Settings
from engage.database import connect
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.log import TOUCHPOINTS
from projections.adapters.postgres_kpis import read_facts
from tests.conftest import TEST_PARTITIONS
from tests.helpers import profiles_by_id

SPEC = HistorySpec(customers=150, days=150, seed=3)
INDEXES = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"


def _table(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return sorted(conn.execute(query).fetchall())


def _facts(dsn: str) -> dict[str, Any]:
    with connect(dsn) as conn:
        facts = read_facts(conn, DEFAULT_CONSUMER)
    # a day's stage changes may sum to zero in one batch cut and be absent in another
    facts["stages"] = [row for row in facts["stages"] if row[2]]
    return {k: sorted(v) for k, v in facts.items()}


def test_replay_rebuilds_identical_projections_and_fires_nothing(engine: Engine) -> None:
    engine.publisher().publish_lines(generate_lines(SPEC), "replay")
    processor = engine.processor(batch_size=500)
    processor.run(until_idle=True)
    live = profiles_by_id(engine)
    timers = _table(engine.dsn, "SELECT * FROM timers")
    facts = _facts(engine.dsn)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    stream = sorted(r.payload for r in engine.log.find_triggers())
    outbox = _table(engine.dsn, "SELECT trigger_id, published_at FROM trigger_outbox")
    assert stream and len(live) == SPEC.customers

    indexes = _table(engine.dsn, INDEXES)
    result = replay(engine, workers=2, batch_size=333)

    assert result.version == 2
    assert _table(engine.dsn, INDEXES) == indexes  # same names: migrations keep matching
    rebuilt = profiles_by_id(engine)
    assert rebuilt.keys() == live.keys()
    for customer_id, state in live.items():
        assert rebuilt[customer_id] == state, customer_id  # every field, rule memory included
    assert _table(engine.dsn, "SELECT * FROM timers") == timers
    assert _facts(engine.dsn) == facts
    assert engine.store.clock(DEFAULT_CONSUMER) == clock
    # shadow: not one trigger appended or queued, and the report holds the same ids
    assert sorted(r.payload for r in engine.log.find_triggers()) == stream
    assert _table(engine.dsn, "SELECT trigger_id, published_at FROM trigger_outbox") == outbox
    assert all(replayed == live_n == same for _, replayed, live_n, same in result.rules)
    # the report counts both arms; control triggers are held off the stream
    [(held_off,)] = _table(engine.dsn, "SELECT count(*) FROM trigger_outbox WHERE arm = 'control'")
    assert sum(r[1] for r in result.rules) == len(stream) + held_off
    with connect(engine.dsn) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert "engage_replay_2" in schemas and "engage_retired_1" not in schemas

    # the live processor (connections opened before the swap) carries on from the new version
    more = HistorySpec(customers=150, days=170, seed=3)
    engine.publisher().publish_lines(generate_lines(more), "replay")
    processor.run(until_idle=True)
    assert processor.lag() == 0
    heads = engine.log.heads(TOUCHPOINTS)
    counted = sum(p["event_count"] for p in profiles_by_id(engine).values())
    assert counted == sum(heads.values())

    again = replay(engine, workers=1, keep_old=True)
    assert again.version == 3
    with connect(engine.dsn) as conn:
        kept = conn.execute("SELECT count(*) FROM engage_retired_2.profiles").fetchone()
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert kept is not None and kept[0] == SPEC.customers
    # the earlier replay's report is reclaimed; the newest stays to be read
    assert again.dropped_reports == ["engage_replay_2"]
    assert "engage_replay_3" in schemas and "engage_replay_2" not in schemas
    # --keep-old keeps the replaced version until the next replay
    third = replay(engine, workers=1)
    assert third.dropped_reports == ["engage_retired_2", "engage_replay_3"]
    with connect(engine.dsn) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert {s for s in schemas if s.startswith("engage_")} == {"engage_replay_4"}


def test_swap_is_atomic_under_a_running_processor(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """A live processor and a publisher keep going while a replay swaps; a reader
    checking profiles against offsets in one statement never sees a mix, and the
    end state equals a clean run of the whole log."""
    history = list(generate_lines(SPEC))
    half = len(history) // 2
    dsn, clean_dsn = fresh_database(), fresh_database()
    settings = Settings(dsn, tmp_path, None, TEST_PARTITIONS)
    with Engine.open(settings) as engine, Engine.open(settings) as live_engine:
        engine.publisher().publish_lines(history[:half], "first")
        live = live_engine.processor(batch_size=200)
        live.run(until_idle=True)
        stop = threading.Event()
        errors: list[str] = []
        reads: list[int] = []

        def recorded(work: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    work()
                except Exception as exc:  # any failure in a thread fails the test
                    errors.append(f"{work.__name__}: {exc!r}")

            return run

        @recorded
        def live_loop() -> None:
            live.run(until_idle=False, stop=stop, idle_wait=0.05)

        @recorded
        def publish_rest() -> None:
            with Engine.open(settings) as publisher_engine:
                publisher = publisher_engine.publisher()
                for i in range(half, len(history), 400):
                    publisher.publish_lines(history[i : i + 400], "rest")

        @recorded
        def read_loop() -> None:
            with connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    row = conn.execute(
                        "SELECT (SELECT coalesce(sum((state->>'event_count')::bigint), 0)"
                        " FROM profiles),"
                        ' (SELECT coalesce(sum("offset"), 0) FROM consumer_offsets'
                        "  WHERE consumer = %s)",
                        (DEFAULT_CONSUMER,),
                    ).fetchone()
                    assert row is not None
                    reads.append(1)
                    if row[0] != row[1]:
                        errors.append(f"profiles count {row[0]} events, offsets say {row[1]}")

        threads = [threading.Thread(target=f) for f in (live_loop, publish_rest, read_loop)]
        for thread in threads:
            thread.start()
        try:
            replay(engine, workers=2, batch_size=150)
        finally:
            threads[1].join()
            time.sleep(0.5)  # let the live processor and the reader see the last appends
            stop.set()
            for thread in threads:
                thread.join()
        live.run(until_idle=True)
        assert errors == []
        assert len(reads) > 10
        assert live.lag() == 0
        after = profiles_by_id(engine)
        stream = sorted(r.payload for r in engine.log.find_triggers())
    with Engine.open(Settings(clean_dsn, tmp_path, None, TEST_PARTITIONS)) as clean:
        clean.publisher().publish_lines(history, "all")
        clean.processor().run(until_idle=True)
        assert after == profiles_by_id(clean)
        assert stream == sorted(r.payload for r in clean.log.find_triggers())


def test_a_replay_killed_mid_build_leaves_the_live_version_and_restarts_clean(
    engine: Engine, cli_env: dict[str, str]
) -> None:
    engine.publisher().publish_lines(generate_lines(SPEC), "replay")
    engine.processor().run(until_idle=True)
    live = profiles_by_id(engine)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "replay", "--workers", "1", "--batch-size", "20"],
        env={**cli_env, "ENGAGE_DATABASE_URL": engine.dsn},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        built = 0
        with connect(engine.dsn, autocommit=True) as conn:
            while built == 0 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                exists = conn.execute("SELECT to_regclass('engage_replay_2.profiles')").fetchone()
                if exists is not None and exists[0] is not None:
                    row = conn.execute("SELECT count(*) FROM engage_replay_2.profiles").fetchone()
                    built = 0 if row is None else int(row[0])
        assert proc.poll() is None, "the replay finished before it could be killed"
        assert 0 < built < SPEC.customers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert profiles_by_id(engine) == live  # the live version never saw the build
    with connect(engine.dsn) as conn:
        version = conn.execute(
            "SELECT value FROM engage_meta WHERE key = 'projection_version'"
        ).fetchone()
    assert version is None
    result = replay(engine, workers=2)  # the lock died with the process; the build restarts
    assert result.version == 2
    assert profiles_by_id(engine) == live


def test_replay_reads_the_kafka_log_in_kafka_mode(kafka_settings: Settings) -> None:
    """Through the Log port: in Kafka mode the replay reads the topics."""
    with Engine.open(kafka_settings) as engine:
        engine.publisher().publish_lines(generate_lines(HistorySpec(customers=40, days=90)), "k")
        assert sum(engine.log.heads(TOUCHPOINTS).values()) == 0, "events live on Kafka"
        engine.processor().run(until_idle=True)
        live = profiles_by_id(engine)
        relay = engine.relay()
        relay.drain()
        fired = sum(engine.stream.heads("triggers").values())
        assert live and fired
        result = replay(engine, workers=2)
        assert result.events == sum(engine.stream.heads(TOUCHPOINTS).values())
        assert profiles_by_id(engine) == live
        assert sum(r[1] for r in result.rules) == fired
        assert sum(engine.stream.heads("triggers").values()) == fired
