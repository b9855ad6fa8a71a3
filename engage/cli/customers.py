"""``engage profile`` and ``engage timeline``: one customer, now or at an instant."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, out, parse_time_option
from engage.config import describe_database
from engage.errors import NotFound
from engage.runtime import Engine
from projections.queries import timeline as customer_timeline
from projections.queries import unknown_customer


def _where(engine: Engine) -> str:
    """Which database answered: a customer missing from the wrong one looks
    exactly like a customer missing from the right one."""
    return f"in the database at {describe_database(engine.settings)}"


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
        view = engine.customer_view(customer_id, at)
    if view is None:
        raise NotFound(f"{unknown_customer(customer_id, as_of)} {_where(engine)}")
    if json:
        sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _render(view)


@app.command()
def timeline(
    customer_id: Annotated[str, typer.Argument(help="The customer_id to show.")],
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show one customer's touchpoints and the triggers they fired, in time order."""
    with Engine.open() as engine:
        items = customer_timeline(engine.history, engine.codec, customer_id, engine.keys)
    if not any(i["kind"] == "touchpoint" for i in items):
        raise NotFound(f"{unknown_customer(customer_id)} {_where(engine)}")
    if json:
        for item in items:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
        return
    table = Table(title=f"timeline of {customer_id}")
    for column in ("at", "what", "channel", "details", "id"):
        table.add_column(column)
    for item in items:
        if item["kind"] == "touchpoint":
            details = ", ".join(f"{k}={v}" for k, v in item["properties"].items() if k != "items")
            table.add_row(
                item["occurred_at"], item["type"], item["channel"], details, item["event_id"]
            )
        else:
            t = item["trigger"]
            details = ", ".join(f"{k}={v}" for k, v in t["details"].items())
            table.add_row(
                item["occurred_at"], f"trigger {t['rule_id']}", "-", details, t["trigger_id"]
            )
    out.print(table)
