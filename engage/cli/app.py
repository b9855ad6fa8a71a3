"""The Typer application object and the helpers every command shares."""

from __future__ import annotations

import typer
from rich.console import Console

from engage.errors import ConfigError
from events.model import Micros
from events.timefmt import parse_iso

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

import sys  # noqa: E402

# Piped output (CI logs, `| less`) gets wide tables instead of 80-column squeezes.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_time_option(value: str | None, option: str) -> Micros | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
