"""``engage run`` and ``engage status``: processing the log and watching it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from consumers.parallel import SMALL_BACKLOG, WorkerJob, run_parallel, shares, workers_for
from consumers.pipeline import BatchResult
from consumers.processor import DEFAULT_BATCH, Processor, RunStats
from consumers.rule_reload import RuleFileWatcher
from engage.cli.app import RateBar, app, err, out, parse_time_option, plural
from engage.cli.rules import RulesOption
from engage.config import describe_database
from engage.housekeeping import human, measure
from engage.runtime import Engine
from events.control import MODEL_TYPE
from events.log import TOUCHPOINTS, TRIGGERS, lag
from events.timefmt import format_optional


@app.command()
def run(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit once everything pending is processed.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            help="Stand in for the wall time (tests, backfills): once caught up, every "
            "partition's clock moves to this ISO 8601 instant. Without it the clock follows "
            "the wall time minus ENGAGE_LATENESS (default 5m), so timers fire with no "
            "traffic; each such advance is a clock record on the log, so `engage replay` "
            "reproduces it."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Records read per partition per transaction.")
    ] = DEFAULT_BATCH,
    rules: RulesOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --until-idle: processes sharing the partitions (default: the "
            f"number of cores, at most 4; one for a backlog under {SMALL_BACKLOG:,} "
            "records, which one process clears before more could start). Each owns a "
            "disjoint share of the partitions.",
        ),
    ] = None,
) -> None:
    """Process the log: fold touchpoints into customer-360 profiles.

    Without --until-idle it keeps running and wakes as soon as new events are
    published (Ctrl-C to stop). Profiles, offsets and the clock are committed
    together per batch, so stopping or crashing at any point loses nothing and
    counts nothing twice.
    """
    now_us = parse_time_option(now, "--now")
    with Engine.open(rules=rules) as engine:
        processor = engine.processor(batch_size, live=True)
        lag = processor.lag()
        started = time.perf_counter()
        stop = threading.Event()
        if until_idle:
            stats = process_until_idle(engine, rules, workers, now_us, batch_size)
        else:
            err.print(f"processing (lag {lag}); waiting for new events, Ctrl-C to stop")

            def report(result: BatchResult) -> None:
                if result.events or result.triggers:
                    out.print(
                        f"processed {plural(result.events, 'event')}, "
                        f"{plural(result.profiles, 'profile')}, "
                        f"{plural(len(result.triggers), 'trigger')}"
                    )

            watcher = None
            if rules is not None:
                watcher = RuleFileWatcher(
                    Path(rules), processor.pipeline, lambda m: err.print(m, markup=False)
                )
            try:
                stats = processor.run(
                    until_idle=False,
                    now=now_us,
                    on_batch=report,
                    stop=stop,
                    on_idle=None if watcher is None else watcher.check,
                )
            except KeyboardInterrupt:
                stop.set()
                err.print("stopped")
                return
        elapsed = time.perf_counter() - started
        rate = stats.events / elapsed if elapsed > 0 else 0.0
        out.print(
            f"processed {plural(stats.events, 'event')} in {elapsed:.1f}s "
            f"({rate:,.0f} events/s); {plural(stats.triggers, 'trigger')} fired; "
            f"{stats.poison:,} undecodable to the DLQ; "
            f"lag now {processor.lag()}"
        )


def process_until_idle(
    engine: Engine,
    rules: str | None,
    workers: int | None,
    now: int | None,
    batch_size: int,
    *,
    transient: bool = True,
) -> RunStats:
    """Process everything pending behind a progress bar, in one process or in
    ``workers`` processes over disjoint partition shares (None: as many as clear
    the backlog soonest). The processors are live: caught up, they move quiet
    partitions' clocks to the wall time."""
    processor = engine.processor(batch_size, live=True)
    lag = processor.lag()
    if workers is None:
        workers = workers_for(lag)
    if workers > 1:
        return _run_shares(engine, processor, rules, workers, now, batch_size, lag, transient)
    with RateBar("processing", lag, transient=transient) as bar:
        done = 0

        def advance(result: BatchResult) -> None:
            nonlocal done
            done += result.records
            bar.update(done)

        return processor.run(until_idle=True, now=now, on_batch=advance)


def _run_shares(
    engine: Engine,
    watcher: Processor,
    rules: str | None,
    workers: int,
    now: int | None,
    batch_size: int,
    lag: int,
    transient: bool,
) -> RunStats:
    open_engine = engine.reopener(rules)
    jobs = [
        WorkerJob(open_engine, share, now, batch_size, live=True)
        for share in shares(engine.partitions, workers)
    ]
    with RateBar(f"processing ({len(jobs)} workers)", lag, transient=transient) as bar:
        stats = run_parallel(jobs, lambda: bar.update(lag - watcher.lag()))
        bar.update(lag - watcher.lag())
    return stats


@app.command()
def status() -> None:
    """Show which database is in use and its size, the log's size, each
    consumer's lag, and the dead-letter store's size."""
    with Engine.open() as engine:
        heads = engine.stream.heads(TOUCHPOINTS)
        trigger_heads = engine.stream.heads(TRIGGERS)
        rows = [
            (
                consumer,
                stream,
                lag(
                    heads if stream == TOUCHPOINTS else trigger_heads,
                    engine.store.offsets(consumer, stream),
                ),
            )
            for consumer, stream, _ in engine.store.consumers()
        ]
        clocks = engine.store.clocks()
        dlq_size = engine.dead_letters.count()
        clock_records = engine.log.clock_records() if engine.kafka is None else None
        model_records = engine.log.clock_records(MODEL_TYPE) if engine.kafka is None else 0
        wall = engine.wall() + engine.settings.lateness
        profiles = engine.store.count()
        where = describe_database(engine.settings)
        embedded = engine.settings.database_url is None
        sizes = measure(engine.dsn, engine.settings.home.resolve() / "pgdata" if embedded else None)
        kafka = engine.kafka is not None
    table = Table(title="engage status", show_header=False)
    table.add_row("database", where)
    size = f"{human(sizes.database)} (log {human(sizes.log)}"
    if sizes.kept_versions:
        size += f", replay reports and kept versions {human(sizes.kept_versions)}"
    size += ")"
    if sizes.on_disk is not None and sizes.wal is not None:
        size += f"; {human(sizes.on_disk)} on disk, write-ahead log {human(sizes.wal)}"
    table.add_row("size", size)
    records = sum(heads.values())
    if clock_records is None:
        log_size = f"{plural(records, 'event')} in {len(heads)} partitions, clock records included"
    else:
        log_size = (
            f"{plural(records - clock_records - model_records, 'event')} and"
            f" {plural(clock_records, 'clock record')} in {len(heads)} partitions"
        )
        if model_records:
            log_size += f", {plural(model_records, 'model_fitted record')}"
    table.add_row("log: touchpoints", log_size)
    table.add_row("log: triggers", plural(sum(trigger_heads.values()), "trigger"))
    table.add_row("profiles", f"{profiles:,}")
    table.add_row("dead-letter store", f"{dlq_size:,}")
    if not rows:
        hint = "`engage worker`" if kafka else "`engage run`"
        table.add_row("consumers", f"none yet (start {hint})")
    for consumer, stream, behind_by in rows:
        at = clocks.get(consumer)
        clock = format_optional(at)
        behind = "" if at is None else f" ({format_behind(wall - at)} behind the wall)"
        table.add_row(
            f"consumer {consumer}",
            f"{stream}: lag {behind_by}, clock {clock or '-'}{behind}",
        )
    out.print(table)


def format_behind(micros: int) -> str:
    """A lag behind the wall clock, in the two largest units that apply."""
    seconds = max(0, micros // 1_000_000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
