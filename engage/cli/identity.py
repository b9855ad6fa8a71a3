"""``engage identity``: a person's identifiers, the evidence of each link, its
conflicts, and ``unlink`` to undo a merge (docs/identity.md)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, out
from engage.errors import ConfigError, NotFound
from engage.runtime import Engine
from projections.identity_json import person_json


@app.command(
    context_settings={"help_option_names": ["--help", "-h"]},
)
def identity(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="ID | unlink PERSON IDENTIFIER",
            help="Any identifier of a person (customer id, anonymous id or email) to show "
            "its links; or `unlink PERSON IDENTIFIER --reason TEXT` to take an identifier "
            "out of the person (both sides are re-folded from the log).",
        ),
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the identifier is unlinked (required).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a person's identifiers, each link's evidence event and its conflicts,
    or unlink an identifier from a person."""
    if words and words[0] == "unlink":
        if len(words) != 3:
            raise ConfigError("usage: engage identity unlink PERSON IDENTIFIER --reason TEXT")
        if not reason:
            raise ConfigError("engage identity unlink needs --reason TEXT (it goes on the log)")
        with Engine.open() as engine:
            entries = engine.unlink(words[1], words[2], reason)
        out.print(
            f"unlinked {words[2]!r} from {words[1]!r}: {len(entries)} identity record(s) "
            "appended; `engage run` re-folds both sides"
        )
        return
    if len(words) != 1:
        raise ConfigError("usage: engage identity ID  (or: engage identity unlink PERSON ID)")
    with Engine.open() as engine:
        person = engine.identity.find(words[0])
        known = person is not None or engine.store.get(words[0]) is not None
    if person is None:
        if not known:
            raise NotFound(f"no person or customer has the identifier {words[0]!r}")
        person_view: dict[str, Any] = {
            "person_id": words[0],
            "identifiers": [{"kind": "customer_id", "value": words[0]}],
            "conflicts": [],
            "merged_from": [],
        }
    else:
        person_view = person_json(person)
    if json:
        sys.stdout.write(orjson.dumps(person_view, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"person {person_view['person_id']}")
    for column in ("kind", "identifier", "evidence event", "linked at"):
        table.add_column(column)
    for item in person_view["identifiers"]:
        table.add_row(
            item["kind"], item["value"], item.get("evidence", "-"), item.get("linked_at", "-")
        )
    out.print(table)
    for conflict in person_view["conflicts"]:
        ident = conflict["identifier"]
        out.print(
            f"conflict: {ident['kind']} {ident['value']!r} not linked "
            f"(event {conflict['evidence']}): {conflict['reason']}"
        )
    if person_view["merged_from"]:
        out.print("merged from: " + ", ".join(person_view["merged_from"]))
