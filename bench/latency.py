"""Benchmark: publish-to-trigger latency under a steady publish rate.

A long-running ``engage run`` (the live processor, as a user starts it) works
in its own process while this one publishes at a fixed rate for a while: each
10 ms it publishes rate/100 events through the real ingest path. One event in
ten is a new customer's first purchase, which fires
``first-purchase-thank-you``; the rest are web visits of returning visitors.
The latency of a trigger is the time from its purchase's append to the
trigger's append on the triggers stream (both stamped by PostgreSQL at the
start of the appending transaction, so no two clocks are compared).

The rates run in order in one process run; the lowest rate is the baseline
(latency with the processor mostly idle), the DESIGN.md target is p99 ≤ 50 ms
at 10,000 events/s.

Each history shape runs on a database of its own. ``short``: the processor
starts on an empty log. ``long``: it first catches up with 18 months of
purchase-heavy history ending at the wall time (``--long-customers``
customers, their timers armed and firing), and the returning visitors of the
measured traffic are those customers, so each touchpoint loads and re-arms a
real profile.

    python bench/latency.py --rates 1000,10000 --seconds 20 [--shapes short,long]

Prints one JSON object. Runs against a fresh database: on the server named by
ENGAGE_DATABASE_URL when set, otherwise on a throwaway embedded server.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import admin_server, fresh_database
from engage.config import Settings
from engage.database import connect, migrate
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.model import DAY
from events.timefmt import format_iso

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
TICK_S = 0.01
THANKS = "first-purchase-thank-you"
"""The trigger timed: each new buyer's first purchase fires it at once."""


def _line(run: str, n: int, at: int, returning: list[str] | None = None) -> str:
    when = format_iso(at)
    if n % 10 == 0:
        body: dict[str, Any] = {
            "event_id": f"{run}-{n}",
            "customer_id": f"{run}-buyer-{n}",
            "type": "purchase",
            "occurred_at": when,
            "properties": {"order_id": f"{run}-o-{n}", "amount": 25.0},
        }
    else:
        visitor = returning[n % len(returning)] if returning else f"{run}-visitor-{n % 5000}"
        body = {
            "event_id": f"{run}-{n}",
            "customer_id": visitor,
            "type": "web_visit",
            "occurred_at": when,
            "properties": {"url": "/"},
        }
    return orjson.dumps(body).decode()


def _lag(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(p.head), 0) - coalesce(("
            '  SELECT sum(o."offset") FROM consumer_offsets o'
            "  WHERE o.consumer = 'engage-processor' AND o.stream = 'touchpoints'), 0)"
            " FROM log_partitions p WHERE p.stream = 'touchpoints'"
        ).fetchone()
    return int(row[0]) if row else 0


def _triggers(dsn: str, run: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM trigger_log WHERE customer_id LIKE %s AND rule_id = %s",
            (f"{run}-buyer-%", THANKS),
        ).fetchone()
    return int(row[0]) if row else 0


def _latencies(dsn: str, run: str) -> dict[str, float]:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms), max(ms)"
            " FROM (SELECT extract(epoch FROM tl.appended_at - t.appended_at) * 1000 AS ms"
            "       FROM trigger_log tl JOIN touchpoints t"
            "         ON t.customer_id = tl.customer_id AND t.type = 'purchase'"
            "       WHERE tl.customer_id LIKE %s AND tl.rule_id = %s) AS l",
            (f"{run}-buyer-%", THANKS),
        ).fetchone()
    assert row is not None and row[0] is not None
    p50, p95, p99 = (float(v) for v in row[0])
    return {
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(float(row[1]), 1),
    }


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/latency.py: timed out waiting for {what}")
        time.sleep(0.05)


def _run_rate(
    engine: Engine,
    dsn: str,
    rate: int,
    seconds: float,
    start: int,
    returning: list[str] | None = None,
) -> dict[str, Any]:
    run = f"r{rate}"
    per_tick = max(1, round(rate * TICK_S))
    publisher = engine.publisher()
    n = 0
    began = time.perf_counter()
    next_tick = began
    while time.perf_counter() - began < seconds:
        lines = [_line(run, n + i, start + (n + i) * 100, returning) for i in range(per_tick)]
        publisher.publish_lines(lines, "bench")
        n += per_tick
        next_tick += TICK_S
        pause = next_tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.perf_counter() - began
    purchases = (n + 9) // 10
    _wait(lambda: _lag(dsn) == 0 and _triggers(dsn, run) >= purchases, 120, "the processor")
    return {
        "target_events_per_s": rate,
        "published_events_per_s": round(n / elapsed),
        "events": n,
        "triggers_measured": purchases,
        **_latencies(dsn, run),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rates", default="1000,10000", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per rate")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--shapes", default="short,long", help="history shapes, comma-separated")
    parser.add_argument("--long-customers", type=int, default=20_000)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    shapes = []
    with admin_server() as (admin, workdir):
        for shape in args.shapes.split(","):
            with fresh_database(admin) as dsn:
                shapes.append(_measure(args, dsn, str(workdir), rates, shape))
    print(
        orjson.dumps(
            {
                "shapes": shapes,
                "partitions": args.partitions,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}",
            }
        ).decode()
    )


def _preload(engine: Engine, dsn: str, customers: int) -> tuple[list[str], int]:
    """The long history, ending now; returns its customer ids and its size."""
    days = 540
    now = time.time_ns() // 1000
    spec = HistorySpec(customers=customers, days=days, start=now - days * DAY, seed=5, shape="long")
    report = engine.publisher().publish_lines(generate_lines(spec), "bench-preload")
    _wait(lambda: _lag(dsn) == 0, 1800, "the processor to catch up with the long history")
    return [f"c-{i + 1:06d}" for i in range(customers)], report.accepted


def _measure(
    args: argparse.Namespace, dsn: str, tmp: str, rates: list[int], shape: str
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update(ENGAGE_DATABASE_URL=dsn, ENGAGE_HOME=tmp, ENGAGE_PARTITIONS=str(args.partitions))
    migrate(dsn, args.partitions)
    processor = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = []
        with Engine.open(Settings(dsn, Path(tmp), None, args.partitions)) as engine:
            # warm-up: the processor has started, connected and fired once
            engine.publisher().publish_lines([_line("warm", 0, T0)], "bench")
            _wait(lambda: _triggers(dsn, "warm") == 1, 120, "the processor to start")
            returning, preloaded = None, 0
            if shape == "long":
                returning, preloaded = _preload(engine, dsn, args.long_customers)
            # event times just behind the wall clock, as live traffic has them
            start = time.time_ns() // 1000 - 10**9
            for rate in rates:
                results.append(_run_rate(engine, dsn, rate, args.seconds, start, returning))
                start += rate * int(args.seconds) * 100 + 10**6  # later event time
        baseline = results[0]
        return {
            "shape": shape,
            "preloaded_events": preloaded,
            "runs": results,
            "baseline_rate": baseline["target_events_per_s"],
            "p99_ratio_to_baseline": {
                str(r["target_events_per_s"]): round(r["p99_ms"] / baseline["p99_ms"], 2)
                for r in results
            },
        }
    finally:
        processor.terminate()
        processor.wait(30)


if __name__ == "__main__":
    main()
