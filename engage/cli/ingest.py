"""``engage publish`` and ``engage dlq``: getting touchpoints in, and seeing what was refused."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from engage.cli.app import app, err, out, parse_time_option
from engage.errors import ConfigError
from engage.runtime import Engine
from events.publisher import PublishReport

SHOWN_REJECTIONS = 20


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def print_report(report: PublishReport, source: str | None) -> None:
    for rejection in report.rejections[:SHOWN_REJECTIONS]:
        err.print(f"rejected {rejection.message(source or '')}", markup=False)
    more = report.rejected - min(report.rejected, SHOWN_REJECTIONS)
    if more:
        err.print(f"... and {more} more rejected lines; see `engage dlq`", markup=False)
    if report.duplicate_ids:
        shown = ", ".join(report.duplicate_ids[:5])
        extra = "" if report.duplicates <= 5 else f" and {report.duplicates - 5} more"
        err.print(f"duplicate event_id (stored once): {shown}{extra}", markup=False)
    out.print(
        f"accepted {report.accepted}, duplicate {report.duplicates}, rejected {report.rejected}"
    )


NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        metavar="TS",
        help="Stand-in for the wall clock (backfills, tests): an occurred_at later than "
        "this plus ENGAGE_MAX_FUTURE (default 1d) is rejected.",
    ),
]


def with_progress(
    what: str,
    size: int | None,
    publish: Callable[[Callable[[int, int], None] | None], PublishReport],
) -> PublishReport:
    """Run ``publish(on_progress)`` with a progress bar on stderr for inputs
    over 1 MB (bytes read, rate, time left); smaller ones finish too fast to need one."""
    if size is None or size <= 1_000_000:
        return publish(None)
    progress = Progress(
        TextColumn(what),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task(what, total=size)
        return publish(lambda _n, b: progress.advance(task, b))


@app.command()
def publish(
    path: Annotated[
        str, typer.Argument(help="A JSON Lines file of touchpoints, or - for standard input.")
    ],
    source: Annotated[
        str | None, typer.Option(help="Name recorded with rejected lines (default: the file name).")
    ] = None,
    now: NowOption = None,
) -> None:
    """Validate JSON Lines touchpoints and append the valid ones to the log.

    Every bad line is reported with its line number, field and reason and kept
    with its raw text in the dead-letter store (see `engage dlq`); the valid
    lines around it are still accepted. A repeated event_id is a duplicate:
    stored once. An occurred_at before 1970 or later than now plus
    ENGAGE_MAX_FUTURE is rejected. Exits 0 when nothing was rejected, 1 otherwise.
    """
    at = parse_time_option(now, "--now")
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
        size = None
        label = source or "stdin"
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"no such file: {path}")
        stream = file.open("rb")
        size = file.stat().st_size
        label = source or file.name
    with Engine.open() as engine, engine.publishing(at) as publisher:
        report = with_progress(
            "publishing", size, lambda tick: publisher.publish_lines(_lines(stream), label, tick)
        )
    if stream is not sys.stdin.buffer:
        stream.close()
    print_report(report, label)
    raise typer.Exit(1 if report.rejected else 0)


dlq_app = typer.Typer(
    help="The dead-letter store: every rejected input with where, why and its raw text "
    "(the first 16 KiB, with the whole input's size and SHA-256).",
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.callback(invoke_without_command=True)
def dlq(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest last.")] = 100,
    before: Annotated[
        int | None, typer.Option(min=1, help="Only dead letters with an id below this (paging).")
    ] = None,
) -> None:
    """List the dead-letter store: every rejected input with where, why and its raw text."""
    if ctx.invoked_subcommand is not None:
        return
    with Engine.open() as engine:
        letters = engine.dead_letters.list(limit, before)
        total = engine.dead_letters.count()
    if json:
        for letter in letters:
            sys.stdout.write(orjson.dumps(letter.as_json()).decode() + "\n")
        return
    if not letters:
        out.print("the dead-letter store is empty")
        return
    for letter in letters:
        where = (
            f"{letter.source or '?'}:line {letter.line_no}"
            if letter.line_no
            else (letter.source or "?")
        )
        out.print(
            f"#{letter.id} {letter.received_at} [{letter.stage}] {where}: "
            f"{letter.field}: {letter.reason}",
            markup=False,
        )
        raw = letter.raw if len(letter.raw) <= 200 else letter.raw[:200] + "…"
        out.print(f"    raw: {raw}", markup=False)
    if total > len(letters):
        out.print(f"({len(letters)} of {total} shown; use --limit, or --before {letters[0].id})")


@dlq_app.command("purge")
def purge(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            metavar="TS",
            help="Delete dead letters received before this ISO 8601 instant.",
        ),
    ],
) -> None:
    """Delete old dead letters (retention): those received before --before."""
    at = parse_time_option(before, "--before")
    assert at is not None
    with Engine.open() as engine:
        n = engine.dead_letters.purge(at)
    out.print(f"deleted {n} dead letters received before {before}", markup=False)
