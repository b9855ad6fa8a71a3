"""``engage privacy``: erasure, access and suppression (GDPR, LGPD)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from engage.access import export_person, now_iso
from engage.cli.app import app, out
from engage.erasure import Receipt, erase
from engage.runtime import Engine

privacy_app = typer.Typer(
    help="Privacy requests: erase a person (crypto-shredding, suppression), export "
    "everything held about them, lift a suppression.",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")


def print_receipt(receipt: Receipt) -> None:
    table = Table(title=f"erasure {receipt.erasure_id} of {receipt.person!r}")
    for column in ("store", "action", "rows"):
        table.add_column(column)
    for item in receipt.stores:
        table.add_row(item["store"], item["action"], f"{item['rows']:,}")
    out.print(table)
    out.print(
        f"erased {receipt.person!r} ({receipt.reason}); completed {receipt.completed_at}; "
        f"{len(receipt.stores)} stores checked; receipt kept in privacy_erasures"
    )


@privacy_app.command("erase")
def erase_command(
    person: Annotated[str, typer.Argument(help="The customer_id (or anonymous_id) to erase.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why: the request and its reference (required).")
    ],
    json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
) -> None:
    """Erase a person: destroy their key, delete or shred everything derived
    from them, append subject_erased to the log, refuse their new events.
    Safe to run again; an interrupted erasure is completed by a rerun."""
    with Engine.open() as engine:
        receipt = erase(engine, person, reason)
    if json:
        sys.stdout.write(orjson.dumps(receipt.as_json(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        print_receipt(receipt)


@privacy_app.command("export")
def export_command(
    person: Annotated[str, typer.Argument(help="The customer_id (or anonymous_id).")],
    output: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here instead of stdout.")
    ] = None,
) -> None:
    """Everything held about a person, decrypted, as JSON (the right of access)."""
    with Engine.open() as engine:
        held = export_person(engine, person, now_iso())
    text = orjson.dumps(held, option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote everything held about {person!r} to {output}")


@privacy_app.command("unsuppress")
def unsuppress_command(
    person: Annotated[str, typer.Argument(help="The customer_id (or anonymous_id).")],
) -> None:
    """Accept new events for an erased person again (their erased past stays erased)."""
    with Engine.open() as engine:
        lifted = engine.keys.unsuppress(person)
    if lifted:
        out.print(f"{person!r} is no longer suppressed: new events are accepted")
    else:
        out.print(f"{person!r} was not suppressed")
