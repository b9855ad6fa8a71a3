"""``engage replay``: rebuild every projection from the log, then swap it in."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from consumers.parallel import default_workers
from consumers.replay import REPLAY_BATCH
from consumers.replay import replay as run_replay
from engage.cli.app import RateBar, app, out, parse_time_option
from engage.cli.rules import RulesOption
from engage.runtime import Engine


@app.command()
def replay(
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes sharing the partitions (default: the cores, at most 4)."
        ),
    ] = default_workers(),
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Records read per partition per transaction. Bigger batches rewrite each"
            " profile fewer times; each record takes about 1 KB of memory.",
        ),
    ] = REPLAY_BATCH,
    now: Annotated[
        str | None,
        typer.Option(
            help="Move every partition's clock to at least this ISO 8601 instant, as "
            "`run --now` does: by clock records appended to the log, so the live "
            "processor sees the same advance. Not needed to reproduce a live run: "
            "its clock records are already on the log."
        ),
    ] = None,
    keep_old: Annotated[
        bool,
        typer.Option(
            "--keep-old",
            help="Keep the replaced version's tables in schema engage_retired_<n> "
            "(default: dropped after the swap).",
        ),
    ] = False,
    rules: RulesOption = None,
) -> None:
    """Rebuild every projection (profiles, timers, KPIs, clock, offsets) from the
    start of the log into a new version beside the live one, catch up with the
    head, and swap it in atomically: readers see the old or the new version,
    never a mix, and the live processor pauses only for the swap.

    Shadow: the rules run (their memory lives in the profiles), but what they
    fire is only recorded in the replay report (schema engage_replay_<n>, table
    trigger_outbox) and compared with the live triggers; nothing is appended to
    the triggers stream or the live outbox. Give the same --rules as the live
    `engage run`, so the rebuilt rule memory is for the rules that keep running.
    """
    now_us = parse_time_option(now, "--now")
    with Engine.open(rules=rules) as engine:
        started = time.perf_counter()
        label = "replaying" if workers == 1 else f"replaying ({workers} workers)"
        with RateBar(label, 0) as bar:
            result = run_replay(
                engine,
                rules=rules,
                workers=workers,
                batch_size=batch_size,
                now=now_us,
                keep_old=keep_old,
                on_progress=lambda done, total: bar.update(done, total),
            )
        elapsed = time.perf_counter() - started
    table = Table(title=f"replay report (schema {result.report_schema}, table trigger_outbox)")
    for column in ("rule", "would fire", "fired live", "same trigger ids"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for rule_id, replayed, live, same in result.rules:
        table.add_row(rule_id, f"{replayed:,}", f"{live:,}", f"{same:,}")
    out.print(table)
    replayed_total = sum(r[1] for r in result.rules)
    out.print(
        f"replayed {result.events:,} events in {elapsed:.1f}s "
        f"({result.events / max(elapsed, 1e-9):,.0f} events/s) into projection version "
        f"{result.version}, now live; {replayed_total:,} triggers recorded in the report, "
        f"none fired; {result.poison} undecodable records kept in the report's dead_letters; "
        + (
            f"previous version kept in schema engage_retired_{result.version - 1}"
            if result.kept_old
            else "previous version dropped"
        )
    )
