"""``engage outcomes``: did the triggers work? Conversions and uplift per rule and arm."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, out, parse_time_option
from engage.cli.rules import RulesOption
from engage.outcomes import outcomes_report
from engage.runtime import Engine


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 24:.1f}d" if value >= 48 else f"{value:.1f}h"


def _uplift(found: dict[str, Any] | None) -> str:
    if found is None:
        return "- (no control arm)"
    low, high = found["ci95"]
    return f"{found['difference']:+.1%} (95% CI {low:+.1%} to {high:+.1%})"


def outcomes_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The report as a table: one line per rule and arm, the uplift on the
    treatment line (``engage backtest`` prints the same for would-be triggers)."""
    table = Table(title=title)
    for column in ("rule", "arm", "triggers", "conversions", "rate", "revenue", "median time"):
        table.add_column(column, justify="left" if column in ("rule", "arm") else "right")
    table.add_column("uplift")
    for rule in rows:
        for arm in rule["arms"]:
            treatment = arm["arm"] == "treatment"
            table.add_row(
                rule["rule_id"] if treatment else "",
                arm["arm"],
                f"{arm['triggers']:,}",
                f"{arm['conversions']:,}",
                _pct(arm["conversion_rate"]),
                f"{arm['revenue']:,.2f}",
                _hours(arm["median_hours_to_convert"]),
                _uplift(rule["uplift"]) if treatment else "",
            )
    return table


@app.command()
def outcomes(
    rule: Annotated[str | None, typer.Option(help="Only this rule id.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only triggers fired at or after this ISO 8601 instant."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per rule.")] = False,
    rules: RulesOption = None,
) -> None:
    """Report conversions and uplift per rule and arm (treatment against control)."""
    since_us = parse_time_option(since, "--since")
    with Engine.open(rules=rules) as engine:
        rows = outcomes_report(engine, rule, since_us)
    if json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    out.print(outcomes_table(rows, "outcomes per rule and arm"))
