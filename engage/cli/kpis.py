"""``engage kpis``: the KPI rollups the processor keeps current."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from consumers.pipeline import DEFAULT_CONSUMER
from engage.cli.app import app, out
from engage.database import connect
from engage.errors import ConfigError
from engage.runtime import Engine
from projections.adapters.postgres_kpis import read_clv_rows, read_kpis
from projections.kpis import BY


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


@app.command()
def kpis(
    by: Annotated[
        str, typer.Option("--by", help="Period: day, week (ISO, Monday-based) or month.")
    ] = "week",
    json: Annotated[
        bool, typer.Option("--json", help="Print the whole report (every rollup) as JSON.")
    ] = False,
    last: Annotated[
        int, typer.Option(min=1, help="In the table, show only the latest N periods.")
    ] = 12,
) -> None:
    """Show the KPIs: active customers, purchases, revenue, average order value,
    email open and click rates, NPS, customers per lifecycle stage and triggers
    per rule, per period, rolled up from lifecycle stage and channel to the
    whole business.

    The processor keeps them current as it folds (no scan of the profiles), so
    this is instant at any size. --json gives every rollup (by stage, by
    channel, by channel and stage) for every period.
    """
    if by not in BY:
        raise ConfigError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    with Engine.open() as engine:
        data = read_kpis(engine.dsn, DEFAULT_CONSUMER, by)
        currency = engine.settings.currency
        data["predicted_clv"] = _predicted_clv(engine)
    if json:
        data["currency"] = currency
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not data["periods"]:
        out.print("no KPIs yet: publish touchpoints and run `engage run --until-idle`")
        return
    money = f"({currency})"
    table = Table(title=f"KPIs by {by} (clock {data['as_of']})")
    for column in (
        by,
        "active customers",
        "new",
        "purchases",
        f"revenue {money}",
        f"AOV {money}",
        "open rate",
        "click rate",
        "NPS",
        "triggers",
    ):
        table.add_column(column, justify="left" if column == by else "right")
    for period in data["periods"][-last:]:
        b = period["business"]
        table.add_row(
            period["period"],
            _num(b["active_customers"]),
            _num(b["new_customers"]),
            _num(b["purchases"]),
            _money(b["revenue"]),
            _money(b["average_order_value"]),
            _rate(b["open_rate"]),
            _rate(b["click_rate"]),
            _num(b["nps"]),
            _num(sum(period["triggers_by_rule"].values())),
        )
    out.print(table)
    out.print(
        "active customers: customers with a touchpoint of their own in the period", markup=False
    )
    total = data["total"]
    stages = ", ".join(f"{s} {n:,}" for s, n in total["customers_by_stage"].items())
    out.print(
        f"customers in each lifecycle stage now (end of {total['customers_by_stage_at']}): "
        f"{stages}",
        markup=False,
    )
    rollup = Table(
        title="all time (not current stages): the business, by the stage each customer "
        "was in at the touchpoint, and by channel"
    )
    for column in (
        "",
        "customers",
        "touchpoints",
        "purchases",
        f"revenue {money}",
        f"AOV {money}",
        "open rate",
        "NPS",
    ):
        rollup.add_column(column, justify="left" if not column else "right")

    def add(name: str, m: dict[str, Any], customers: bool) -> None:
        rollup.add_row(
            name,
            _num(m["active_customers"]) if customers else "-",
            _num(m["events"]),
            _num(m["purchases"]),
            _money(m["revenue"]),
            _money(m["average_order_value"]),
            _rate(m["open_rate"]),
            _num(m["nps"]),
        )

    # per stage, the all-time distinct count is the stage of each customer's
    # first touchpoint (almost all "prospect"): not a figure to show beside stages
    add("business (all time)", total["business"], True)
    for stage, m in total["by_stage"].items():
        add(f"while {stage}", m, False)
    for channel, m in total["by_channel"].items():
        add(f"channel {channel}", m, False)
    out.print(rollup)
    fired = ", ".join(f"{r} {n:,}" for r, n in total["triggers_by_rule"].items()) or "none"
    out.print(f"triggers per rule, all time: {fired}", markup=False)
    clv = data["predicted_clv"]
    if clv is None:
        out.print("predicted CLV: no model fitted yet (`engage model fit`)")
        return
    table = Table(
        title=f"predicted CLV, next {clv['horizon_days']:g} days, by lifecycle stage at "
        f"{clv['at']} (model version {clv['model_version']})"
    )
    for column in ("stage", "customers", "predicted CLV", "mean per customer"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, m in [*clv["by_stage"].items(), ("business", clv["business"])]:
        table.add_row(
            name,
            _num(m["customers"]),
            _money(m["predicted_clv_365d"]),
            _money(m["mean_predicted_clv_365d"]),
        )
    out.print(table)


def _predicted_clv(engine: Engine) -> dict[str, Any] | None:
    """Predicted CLV per stage at the clock, with the model the processor
    adopted; None before the first fit. NumPy loads only here."""
    model = engine.store.model(DEFAULT_CONSUMER)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    if model is None or clock is None:
        return None
    from projections.clv import clv_by_stage

    with connect(engine.dsn) as conn:
        rows = read_clv_rows(conn)
    return clv_by_stage(rows, clock, model)
