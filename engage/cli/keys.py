"""``engage keys``: API keys for the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from engage.cli.app import app, out
from engage.errors import EngageError
from engage.http.keys import SCOPES, ApiKeys
from engage.runtime import Engine

keys_app = typer.Typer(
    help="Create, list and revoke API keys for `engage serve`. Clients send "
    "`Authorization: Bearer KEY`. An ingest key can only POST events; a read key "
    "can only read (customers, triggers, KPIs, the dashboard).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. the upstream system.")],
    scope: Annotated[
        str,
        typer.Option(
            help="ingest (write events only), read (read only) or admin (privacy "
            "requests: erasure and access export)."
        ),
    ] = "ingest",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the key (for KEY=$(...)).")
    ] = False,
) -> None:
    """Create a key. It is printed once, as the last word of the output; only
    its hash is stored."""
    if scope not in SCOPES:
        raise EngageError(f"--scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    with Engine.open() as engine:
        store = ApiKeys(engine.dsn)
        try:
            record, key = store.create(name, scope)
        finally:
            store.close()
    if quiet:
        print(key)
        return
    out.print(f"created {record.scope} key #{record.id} {record.name!r} (shown only once): {key}")


@keys_app.command("list")
def list_keys() -> None:
    """List keys (names, scopes and prefixes; never the keys)."""
    with Engine.open() as engine:
        store = ApiKeys(engine.dsn)
        try:
            found = store.all()
        finally:
            store.close()
    table = Table(title=f"{len(found)} API keys")
    for column in ("id", "name", "scope", "prefix", "created", "revoked"):
        table.add_column(column)
    for k in found:
        table.add_row(str(k.id), k.name, k.scope, k.prefix + "…", k.created_at, k.revoked_at or "-")
    out.print(table)


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name (revokes all with it) or id.")],
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    with Engine.open() as engine:
        store = ApiKeys(engine.dsn)
        try:
            n = store.revoke(name)
        finally:
            store.close()
    out.print(f"revoked {n} key(s)")
