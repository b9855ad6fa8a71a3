"""Benchmark: replay speed against DuckDB and a naive one-commit-per-event baseline.

    pip install -e '.[bench]'
    python bench/replay.py --events 10000000 --customers 1000000 [--shapes short,long]

Each history shape runs in turn (``short``: the demo's; ``long``: 18 months
of purchase-heavy retail where timers fire about once per purchase).

In one run, on one generated history (``engage.synthetic``):

1. **load**: the history is generated, validated as ingest would, Avro-encoded
   and appended to the PostgreSQL log through the ``Log`` port in bulk
   (``PostgresLog.append``, one COPY per chunk, in generation order),
   skipping only the JSON text step of ``engage publish``; validation and
   encoding run in a process pool. The same decoded fields go to a Parquet file
   for DuckDB. Reported separately; not part of any rate below.
2. **duckdb**: DuckDB loads the Parquet file (timed apart) and computes the
   profile aggregates (counts by type and channel, first/last seen, spend,
   orders, AOV, last purchase, email counts and rates, subscription, NPS/CSAT
   last and average, surveys, support cases open and closed, the last 20
   touchpoints) into a table.
3. **naive**: the same ``Pipeline`` with one event per transaction commit, on
   a prefix of the log (``--naive-events``), rules on: how event-store
   projections usually run.
4. **replay**: ``engage replay``'s entry point rebuilds every projection from
   offset 0 into a new version and swaps it in: full fidelity (decode, fold,
   KPI deltas, the default rules in shadow, write profiles with COPY),
   partition-parallel over ``--workers`` processes. ``replay`` below is the
   one function that times it.

Afterwards the replayed profiles are checked against DuckDB's aggregates
(customers, events, orders, spend), so both sides computed the same thing.

Prints one JSON object. Runs against ENGAGE_DATABASE_URL's server when set,
otherwise a throwaway embedded PostgreSQL server. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import admin_server, fresh_database
from consumers.processor import RunStats
from consumers.replay import REPLAY_BATCH
from consumers.replay import replay as replay_projections
from engage.config import Settings
from engage.database import connect, migrate
from engage.runtime import Engine
from engage.synthetic import LONG_START, HistorySpec, estimate_events, generate
from events.codec import TouchpointCodec
from events.ingest import validate
from events.log import TOUCHPOINTS, Entry
from events.model import Touchpoint

CHUNK = 50_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- history


def history_spec(events: int, customers: int, seed: int) -> HistorySpec:
    """The shortest period in which ``customers`` give at least ``events``
    events; the history is then cut at exactly ``events``."""
    days = 1
    while days < 3650 and estimate_events(HistorySpec(customers, days, seed=seed)) < events:
        days += 1
    return HistorySpec(customers=customers, days=days, seed=seed)


def chunks(spec: HistorySpec, limit: int) -> Iterator[list[dict[str, Any]]]:
    """The first ``limit`` generated events as JSON ingest objects, in chunks."""
    chunk: list[dict[str, Any]] = []
    for n, obj in enumerate(generate(spec), start=1):
        chunk.append(obj)
        if len(chunk) >= CHUNK or n >= limit:
            yield chunk
            chunk = []
        if n >= limit:
            return
    if chunk:
        yield chunk


_COLUMNS = (
    ("event_id", "string"),
    ("customer_id", "string"),
    ("type", "string"),
    ("channel", "string"),
    ("occurred_at", "int64"),
    ("amount", "float64"),
    ("survey", "string"),
    ("score", "int32"),
    ("case_id", "string"),
)


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in _COLUMNS])


def _columns(chunk: list[Touchpoint]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name, _ in _COLUMNS}
    for e in chunk:
        props = e.properties
        cols["event_id"].append(e.event_id)
        cols["customer_id"].append(e.customer_id)
        cols["type"].append(e.type)
        cols["channel"].append(e.channel)
        cols["occurred_at"].append(e.occurred_at)
        cols["amount"].append(props.get("amount"))
        cols["survey"].append(props.get("survey"))
        cols["score"].append(props.get("score"))
        cols["case_id"].append(props.get("case_id"))
    return cols


_codec: TouchpointCodec | None = None


def prepare(objs: list[dict[str, Any]]) -> tuple[list[tuple[str, str, bytes, int, str]], Any]:
    """In a pool process: validate as ``engage publish`` does (minus the JSON
    text), Avro-encode, and turn the decoded fields into an Arrow table."""
    import pyarrow as pa

    global _codec
    if _codec is None:
        _codec = TouchpointCodec()
    events = [validate(obj) for obj in objs]
    payloads = _codec.encode_many(events)
    rows = [
        (e.event_id, e.customer_id, payload, e.occurred_at, e.type)
        for e, payload in zip(events, payloads, strict=True)
    ]
    return rows, pa.table(_columns(events), schema=_arrow_schema())


def load(engine: Engine, spec: HistorySpec, limit: int, parquet: Path, workers: int) -> int:
    """Append the history to the log in order, in bulk, and write its fields to
    Parquet; validation and encoding run in ``workers`` processes."""
    import pyarrow.parquet as pq

    appended = 0
    context = multiprocessing.get_context("spawn")
    with (
        pq.ParquetWriter(parquet, _arrow_schema()) as writer,
        ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
    ):
        pending: deque[Future[tuple[list[tuple[str, str, bytes, int, str]], Any]]] = deque()

        def append_next() -> None:
            nonlocal appended
            rows, table = pending.popleft().result()
            entries = [Entry(eid, cid, payload, at, typ) for eid, cid, payload, at, typ in rows]
            appended += engine.log.append(TOUCHPOINTS, entries).accepted
            writer.write_table(table)
            if appended % 1_000_000 < CHUNK:
                log(f"loaded {appended:,} events")

        for chunk in chunks(spec, limit):
            pending.append(pool.submit(prepare, chunk))
            if len(pending) > 2 * workers:
                append_next()
        while pending:
            append_next()
    return appended


# --------------------------------------------------------------------------- DuckDB

DUCKDB_PROFILES = """
CREATE TABLE profiles AS
WITH agg AS (
    SELECT
        customer_id,
        count(*) AS event_count,
        histogram(type) AS counts_by_type,
        histogram(channel) AS counts_by_channel,
        min(occurred_at) FILTER (WHERE type <> 'email_sent') AS first_seen,
        max(occurred_at) FILTER (WHERE type <> 'email_sent') AS last_seen,
        count(*) FILTER (WHERE type = 'purchase') AS order_count,
        coalesce(sum(amount) FILTER (WHERE type = 'purchase'), 0) AS purchase_total,
        coalesce(sum(amount) FILTER (WHERE type = 'refund'), 0) AS refund_total,
        max(occurred_at) FILTER (WHERE type = 'purchase') AS last_purchase_at,
        count(*) FILTER (WHERE type = 'email_sent') AS email_sent,
        count(*) FILTER (WHERE type = 'email_opened') AS email_opened,
        count(*) FILTER (WHERE type = 'email_clicked') AS email_clicked,
        arg_max(type = 'subscribed', occurred_at)
            FILTER (WHERE type IN ('subscribed', 'unsubscribed')) AS subscribed_last,
        arg_max(score, occurred_at) FILTER (WHERE survey = 'nps') AS nps_last,
        avg(score) FILTER (WHERE survey = 'nps') AS nps_average,
        arg_max(score, occurred_at) FILTER (WHERE survey = 'csat') AS csat_last,
        avg(score) FILTER (WHERE survey = 'csat') AS csat_average,
        count(*) FILTER (WHERE type = 'survey_response') AS survey_count,
        arg_max(struct_pack(event_id, type, channel, occurred_at), occurred_at, 20)
            AS recent_touchpoints
    FROM events
    GROUP BY customer_id
),
cases AS (
    SELECT
        customer_id,
        count(*) FILTER (WHERE opened) AS support_cases,
        count(*) FILTER (WHERE opened AND NOT closed) AS open_support_cases
    FROM (
        SELECT customer_id, case_id,
               bool_or(type = 'support_case_opened') AS opened,
               bool_or(type = 'support_case_closed') AS closed
        FROM events WHERE case_id IS NOT NULL
        GROUP BY customer_id, case_id
    )
    GROUP BY customer_id
)
SELECT
    agg.*,
    round(purchase_total - refund_total, 2) AS lifetime_spend,
    purchase_total / nullif(order_count, 0) AS average_order_value,
    email_opened / nullif(email_sent, 0) AS open_rate,
    email_clicked / nullif(email_sent, 0) AS click_rate,
    coalesce(subscribed_last, true) AS subscribed,
    coalesce(cases.support_cases, 0) AS support_cases,
    coalesce(cases.open_support_cases, 0) AS open_support_cases
FROM agg LEFT JOIN cases USING (customer_id)
"""

CHECK_DUCKDB = (
    "SELECT count(*), sum(event_count), sum(order_count),"
    " sum(purchase_total - refund_total), sum(support_cases) FROM profiles"
)
CHECK_POSTGRES = (
    "SELECT count(*), sum((state->>'event_count')::bigint),"
    " sum((state->>'order_count')::bigint),"
    " sum((state->>'purchase_total')::float8 - (state->>'refund_total')::float8),"
    " sum((SELECT count(*) FROM json_each(state->'cases') AS c"
    "      WHERE (c.value->>0)::boolean)) FROM profiles"
)


@dataclass
class DuckResult:
    load_s: float
    compute_s: float
    totals: tuple[Any, ...]


def duckdb_profiles(parquet: Path, workdir: Path) -> DuckResult:
    import duckdb

    path = workdir / f"{parquet.stem}.duckdb"
    path.unlink(missing_ok=True)
    db = duckdb.connect(str(path))
    try:
        db.execute(f"SET threads = {os.cpu_count() or 1}")
        started = time.perf_counter()
        db.execute("CREATE TABLE events AS SELECT * FROM read_parquet(?)", [str(parquet)])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        db.execute(DUCKDB_PROFILES)
        compute_s = time.perf_counter() - started
        row = db.execute(CHECK_DUCKDB).fetchone()
        assert row is not None
        return DuckResult(load_s, compute_s, tuple(row))
    finally:
        db.close()


# --------------------------------------------------------------------------- the runs


def replay(settings: Settings, workers: int, batch_size: int | None) -> RunStats:
    """The timed replay: ``engage replay``'s entry point, ``consumers.replay.replay``.

    It rebuilds every projection from offset 0 into a new version beside the
    live one (the same ``Processor`` and ``Pipeline``, the default rules in
    shadow: their triggers go to the build's own outbox, never relayed), over
    ``workers`` partition-parallel processes, fires the timers only the whole
    clock can fire, catches up and swaps the new version in.
    """
    with Engine.open(settings) as engine:
        result = replay_projections(engine, workers=workers, batch_size=batch_size or REPLAY_BATCH)
    return result.stats


def naive(settings: Settings, limit: int) -> tuple[int, float]:
    """One event per transaction commit, the same pipeline and rules, on the
    first ``limit`` events of the log (spread over the partitions)."""
    done = 0
    elapsed = 0.0
    with Engine.open(settings) as engine:
        per_partition = max(1, limit // engine.partitions)
        for partition in range(engine.partitions):
            processor = engine.processor(1, partitions=[partition], relay=False)
            stop = threading.Event()
            count = 0

            def one(_: object, stop: threading.Event = stop) -> None:
                nonlocal count
                count += 1
                if count >= per_partition:
                    stop.set()

            started = time.perf_counter()
            stats = processor.run(until_idle=True, on_batch=one, stop=stop)
            elapsed += time.perf_counter() - started
            done += stats.events
    return done, elapsed


def postgres_totals(dsn: str) -> tuple[Any, ...]:
    with connect(dsn) as conn:
        row = conn.execute(CHECK_POSTGRES).fetchone()
    assert row is not None
    return tuple(row)


def _agree(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    ints = all(int(x) == int(y) for x, y in zip(a[:3] + a[4:5], b[:3] + b[4:5], strict=True))
    spend = abs(float(a[3]) - float(b[3])) <= 1e-6 * max(1.0, abs(float(a[3])))
    return ints and spend


def shape_spec(shape: str, events: int, customers: int | None, seed: int) -> HistorySpec:
    """``short``: the demo's history, as long as ``customers`` need to give
    ``events``; ``long``: 18 months of purchase-heavy retail history."""
    if shape == "long":
        return HistorySpec(
            customers=customers or max(10, events // 9),
            days=540,
            start=LONG_START,
            seed=seed,
            shape="long",
        )
    return history_spec(events, customers or max(10, events // 10), seed)


def run_shape(admin: str, workdir: Path, shape: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = shape_spec(shape, args.events, args.customers, args.seed)
    customers = spec.customers
    with fresh_database(admin, "engage_replay") as dsn:
        result: dict[str, Any] = {"shape": shape}
        migrate(dsn, args.partitions)
        settings = Settings(dsn, workdir, None, args.partitions)
        parquet = workdir / f"events-{shape}.parquet"
        log(f"{shape}: loading ~{args.events:,} events, {customers:,} customers, {spec.days} days")
        with Engine.open(settings) as engine:
            started = time.perf_counter()
            events = load(engine, spec, args.events, parquet, args.load_workers)
            load_s = time.perf_counter() - started
        with connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE touchpoints")
        result.update(
            events=events,
            customers_requested=customers,
            history_days=spec.days,
            partitions=args.partitions,
            load_events_per_s=round(events / load_s),
        )

        duck = None
        if not args.skip_duckdb:
            log(f"{shape}: DuckDB")
            duck = duckdb_profiles(parquet, workdir)
            result.update(
                duckdb_load_s=round(duck.load_s, 2),
                duckdb_s=round(duck.compute_s, 2),
                duckdb_events_per_s=round(events / duck.compute_s),
                duckdb_events_per_s_with_load=round(events / (duck.load_s + duck.compute_s)),
                duckdb_customers=int(duck.totals[0]),
            )

        naive_rate = None
        if not args.skip_naive:
            log(f"{shape}: naive, {args.naive_events:,} events one commit each")
            naive_done, naive_s = naive(settings, args.naive_events)
            naive_rate = naive_done / naive_s
            result.update(naive_events=naive_done, naive_events_per_s=round(naive_rate))

        log(f"{shape}: replay, {args.workers} workers")
        started = time.perf_counter()
        stats = replay(settings, args.workers, args.batch_size)
        replay_s = time.perf_counter() - started
        replay_rate = stats.events / replay_s
        totals = postgres_totals(dsn)
        result.update(
            replay_events=stats.events,
            replay_s=round(replay_s, 2),
            replay_events_per_s=round(replay_rate),
            replay_workers=args.workers,
            replay_triggers_in_shadow=stats.triggers,
            triggers_per_event=round(stats.triggers / max(1, stats.events), 3),
            profiles=int(totals[0]),
        )
        if duck is not None:
            result["replay_vs_duckdb"] = round(replay_rate / (events / duck.compute_s), 3)
            result["profiles_agree_with_duckdb"] = _agree(totals[:5], duck.totals)
        if naive_rate is not None:
            result["replay_vs_naive"] = round(replay_rate / naive_rate, 1)
        parquet.unlink(missing_ok=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="per shape")
    parser.add_argument("--shapes", default="short,long", help="history shapes, comma-separated")
    parser.add_argument(
        "--customers", type=int, default=None, help="default: events / 10 (short), / 9 (long)"
    )
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="replay processes")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="records per partition (default: REPLAY_BATCH)"
    )
    parser.add_argument("--naive-events", type=int, default=20_000, help="prefix for naive")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load-workers", type=int, default=2, help="processes encoding the log")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true")
    args = parser.parse_args()
    # a plain kill still drops the database and stops the embedded server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with admin_server("engage-replay-bench-") as (admin, workdir):
        shapes = [run_shape(admin, workdir, shape, args) for shape in args.shapes.split(",")]
    result = {
        "shapes": shapes,
        "load_method": "engage.synthetic.generate -> events.ingest.validate ->"
        " TouchpointCodec.encode_many (in a process pool) -> PostgresLog.append, one COPY"
        " per 50k-event chunk, in generation order; the same fields to Parquet",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, shared with other work: figures are noisy",
    }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
