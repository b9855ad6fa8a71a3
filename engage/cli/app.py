"""The Typer application object and the helpers every command shares."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engage.cli.safe_text import SafeConsole
from engage.errors import ConfigError
from events.model import Micros
from events.timefmt import parse_named

app = typer.Typer(
    name="engage",
    help=(
        "Engage: an event-sourced customer engagement engine.\n\n"
        "Touchpoints go onto a log (engage publish), a processor folds them into "
        "customer-360 profiles (engage run), and you read them back (engage profile). "
        "By default everything lives in an embedded PostgreSQL server under "
        "$ENGAGE_HOME (./.engage); set ENGAGE_DATABASE_URL to use your own server."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

import os  # noqa: E402
import sys  # noqa: E402


@app.callback()
def _options(
    kafka: str | None = typer.Option(
        None,
        "--kafka",
        metavar="HOST:PORT",
        help="Use Kafka as the log (bootstrap servers); same as ENGAGE_KAFKA_BOOTSTRAP.",
    ),
) -> None:
    if kafka:
        os.environ["ENGAGE_KAFKA_BOOTSTRAP"] = kafka


# Piped output (CI logs, `| less`) gets wide tables instead of 80-column squeezes.
# SafeConsole: control characters in data (ids, reasons) print as escapes.
out = SafeConsole(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 event``, ``2 events``, ``12,345 events``."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def instant_option(flag: str, help: str) -> Any:
    """A ``--flag TS`` option holding an ISO 8601 instant; read it with
    ``parse_time_option``, so every command words a bad instant alike."""
    return typer.Option(flag, help=help, metavar="TS")


def parse_time_option(value: str | None, option: str) -> Micros | None:
    return parse_named(value, option, ConfigError)


class RateBar:
    """A progress bar that shows events/s: the one used by run, publish in the
    demo, and parallel runs, so they all read the same."""

    def __init__(self, label: str, total: int, *, transient: bool = True) -> None:
        self._progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            transient=transient,
        )
        self._task = self._progress.add_task(label, total=total, rate="")
        self._started = time.perf_counter()

    def __enter__(self) -> RateBar:
        self._progress.start()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, done: int, total: int | None = None) -> None:
        rate = done / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(self._task, completed=done, total=total, rate=f"{rate:,.0f} events/s")
