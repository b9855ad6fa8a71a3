"""``engage import csv FILE --map MAPPING.yaml``: CRM and CEM exports onto the log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engage.cli.app import app, parse_time_option
from engage.cli.ingest import NowOption, print_report, with_progress
from engage.errors import ConfigError
from engage.runtime import Engine
from events.csv_shipped import SHIPPED

import_app = typer.Typer(help="Import touchpoints from the exports of other tools.")
app.add_typer(import_app, name="import")


@import_app.command("csv")
def import_csv(
    path: Annotated[str, typer.Argument(help="The CSV export, with a header line.")],
    mapping: Annotated[
        str,
        typer.Option(
            "--map",
            metavar="MAPPING.yaml",
            help="How columns become touchpoints (docs/ingest.md), or a shipped mapping: "
            + ", ".join(SHIPPED)
            + ".",
        ),
    ],
    source: Annotated[
        str | None, typer.Option(help="Name recorded with rejected rows (default: the file name).")
    ] = None,
    now: NowOption = None,
) -> None:
    """Map the rows of a CSV export (orders, contacts, support cases, survey
    responses) to touchpoints and append them to the log.

    Each row is validated like `engage publish` validates a line: a bad row is
    reported with its line number, field (and column) and reason, and kept with
    its raw text in the dead-letter store; the rows around it go through. The
    mapping's event_id makes a re-import store nothing twice. Exits 0 when
    nothing was rejected, 1 otherwise.
    """
    # here, not at the top: the mapping models import pydantic, about 50 ms of
    # every engage command's start
    from events.csv_import import csv_items
    from events.csv_mapping import load_mapping

    at = parse_time_option(now, "--now")
    spec = load_mapping(mapping)  # a bad mapping stops here, before anything is stored
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"no such file: {path}")
    label = source or file.name
    with file.open("rb") as stream, Engine.open() as engine, engine.publishing(at) as publisher:
        items = csv_items(stream, spec, publisher.window)
        report = with_progress(
            "importing",
            file.stat().st_size,
            lambda tick: publisher.publish_parsed(items, label, tick),
        )
    print_report(report, label)
    raise typer.Exit(1 if report.rejected else 0)
