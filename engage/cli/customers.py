"""``engage profile`` and ``engage timeline``: one customer, now or at an instant."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from consumers.pipeline import DEFAULT_CONSUMER
from engage.cli.app import app, out, parse_time_option
from engage.errors import NotFound
from engage.runtime import Engine
from events.codec import CodecError
from events.timefmt import format_iso
from projections.evolve import fold
from projections.profile import Profile
from projections.view import customer_360


def _as_of(engine: Engine, customer_id: str, at: int) -> Profile | None:
    """Fold the customer's events up to ``at`` from the log: the profile as it was."""
    records = engine.log.customer_history(customer_id, until=at)
    events = [
        item
        for item in engine.codec.decode_many([r.payload for r in records])
        if not isinstance(item, CodecError)
    ]
    return fold(None, events, customer_id) if events else None


def _render(view: dict[str, Any]) -> None:
    table = Table(title=f"customer {view['customer_id']}", show_header=False)
    for key, value in view.items():
        if key in ("customer_id", "recent_touchpoints"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        table.add_row(key, "-" if value is None else str(value))
    out.print(table)
    recent = Table(title="recent touchpoints")
    for column in ("occurred_at", "type", "channel", "event_id"):
        recent.add_column(column)
    for item in view["recent_touchpoints"]:
        recent.add_row(item["occurred_at"], item["type"], item["channel"], item["event_id"])
    out.print(recent)


@app.command()
def profile(
    customer_id: Annotated[str, typer.Argument(help="The customer_id to show.")],
    json: Annotated[bool, typer.Option("--json", help="Print the customer-360 JSON.")] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Show the profile as it was at this ISO 8601 instant, folded from the log.",
        ),
    ] = None,
) -> None:
    """Show one customer's 360: spend, orders, email engagement, surveys, support, stage."""
    at = parse_time_option(as_of, "--as-of")
    with Engine.open() as engine:
        if at is None:
            found = engine.store.get(customer_id)
            now = engine.store.clock(DEFAULT_CONSUMER)
        else:
            found = _as_of(engine, customer_id, at)
            now = at
    if found is None:
        when = "" if at is None else f" as of {as_of}"
        raise NotFound(f"unknown customer {customer_id!r}{when}")
    view = customer_360(found, now if now is not None else (found.last_seen or 0))
    if json:
        sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _render(view)


@app.command()
def timeline(
    customer_id: Annotated[str, typer.Argument(help="The customer_id to show.")],
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show one customer's touchpoints (and, once rules run, triggers) in time order."""
    with Engine.open() as engine:
        records = engine.log.customer_history(customer_id)
        items = [
            i
            for i in engine.codec.decode_many([r.payload for r in records])
            if not isinstance(i, CodecError)
        ]
    if not items:
        raise NotFound(f"unknown customer {customer_id!r}")
    items.sort(key=lambda e: e.occurred_at)
    if json:
        for e in items:
            sys.stdout.write(
                orjson.dumps(
                    {
                        "kind": "touchpoint",
                        "event_id": e.event_id,
                        "type": e.type,
                        "channel": e.channel,
                        "occurred_at": format_iso(e.occurred_at),
                        "source": e.source,
                        "properties": e.properties,
                    }
                ).decode()
                + "\n"
            )
        return
    table = Table(title=f"timeline of {customer_id}")
    for column in ("occurred_at", "type", "channel", "details", "event_id"):
        table.add_column(column)
    for e in items:
        details = ", ".join(f"{k}={v}" for k, v in e.properties.items() if k != "items")
        table.add_row(format_iso(e.occurred_at), e.type, e.channel, details, e.event_id)
    out.print(table)
