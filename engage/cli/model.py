"""``engage model fit``: fit the churn and lifetime-value model (BG/NBD and Gamma-Gamma)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from consumers.pipeline import DEFAULT_CONSUMER
from engage.cli.app import RateBar, app, instant_option, out, parse_time_option
from engage.errors import ConfigError, EngageError
from engage.runtime import Engine
from events.log import TOUCHPOINTS
from events.timefmt import format_iso, format_iso_exact
from projections.predictions import TIME_UNIT

if TYPE_CHECKING:  # NumPy and SciPy load only for a fit: they slow every CLI start
    from projections.adapters.model_fits import StoredFit
    from projections.model_fit import Holdout

model_app = typer.Typer(
    help="The churn and lifetime-value model: BG/NBD (purchases and drop-out) with "
    "Gamma-Gamma (order value), fitted to everyone's purchases.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


AsOfOption = Annotated[
    str | None,
    instant_option("--as-of", "Fit on purchases up to this ISO 8601 instant; default: the clock."),
]
HoldoutEndOption = Annotated[
    str | None,
    instant_option("--holdout-end", "Also compare predicted with actual repeat purchases to here."),
]


@model_app.command("fit")
def fit_command(
    as_of: AsOfOption = None,
    holdout_end: HoldoutEndOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
) -> None:
    """Fit BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) by maximum
    likelihood to every customer's purchases as of --as-of, store the
    parameters as the next model version, and print them.

    A customer's repeat purchases are the distinct days (UTC) with a purchase
    after the first; the order value is each such day's total. alpha is in
    days. With --holdout-end, the fit is checked against what customers then
    did: mean predicted and actual repeat purchases per customer in the holdout
    period, by the number of repeat purchases before it, and the error.

    The parameters also go onto the touchpoints log as a model_fitted record
    on every partition: the processor adopts them there (profile predictions,
    the predicted-churn timer), and a replay adopts them at the same position.
    """
    from engage.fitting import fit_model

    start = parse_time_option(as_of, "--as-of")
    end = parse_time_option(holdout_end, "--holdout-end")
    with Engine.open() as engine:
        if start is None:
            start = engine.store.clock(DEFAULT_CONSUMER)
            if start is None:
                raise EngageError(
                    "nothing has been processed yet, so there is no clock to fit as of: "
                    "run `engage run` or give --as-of"
                )
        if end is not None and end <= start:
            raise ConfigError("--holdout-end must be later than --as-of")
        total = sum(engine.stream.heads(TOUCHPOINTS).values())
        with RateBar("reading purchases", total) as bar:
            stored, check = fit_model(engine, start, end, bar.update)
    if json:
        body = _json(stored, check)
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print(stored, check)


def _json(stored: StoredFit, check: Holdout | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": stored.version,
        "fitted_at": stored.fitted_at,
        "as_of": format_iso_exact(stored.as_of),  # an instant to fit again from
        "time_unit": TIME_UNIT,
        "params": stored.params.to_json(),
        **stored.fit,
    }
    if check is not None:
        body["holdout"] = check.to_json()
    return body


def _print(stored: StoredFit, check: Holdout | None) -> None:
    p, fitted = stored.params, stored.fit
    out.print(
        f"model version {stored.version}, fitted as of {format_iso(stored.as_of)} on "
        f"{fitted['customers']:,} customers ({fitted['repeat_customers']:,} with repeat "
        f"purchases); time unit: {TIME_UNIT}; written to the log as model_fitted "
        "(the processor adopts it when it reads it: `engage run`)"
    )
    table = Table(title="fitted parameters")
    for column in ("model", "parameter", "value", "meaning"):
        table.add_column(column, justify="right" if column == "value" else "left")
    rows = [
        ("BG/NBD", "r", p.r, "shape of the purchase rate"),
        ("", "alpha", p.alpha, f"scale of the purchase rate ({TIME_UNIT})"),
        ("", "a", p.a, "drop-out after a purchase, Beta(a, b)"),
        ("", "b", p.b, ""),
        ("", "log-likelihood", fitted["bgnbd_log_likelihood"], ""),
        ("Gamma-Gamma", "p", p.p, "shape of an order value"),
        ("", "q", p.q, "shape of a customer's value scale"),
        ("", "gamma", p.gamma, "scale of a customer's value scale"),
        ("", "log-likelihood", fitted["gamma_gamma_log_likelihood"], ""),
    ]
    for model, name, value, meaning in rows:
        table.add_row(model, name, f"{value:.6g}", meaning)
    out.print(table)
    if check is None:
        return
    held = Table(
        title=f"holdout: repeat purchases per customer in the next {check.days:g} {TIME_UNIT}"
    )
    for column in ("repeat purchases before", "customers", "predicted", "actual", "error"):
        held.add_column(column, justify="right")
    for row in check.rows:
        held.add_row(
            row.frequency,
            f"{row.customers:,}",
            f"{row.predicted:.3f}",
            f"{row.actual:.3f}",
            f"{row.predicted - row.actual:+.3f}",
        )
    out.print(held)
    relative = "-" if check.total_error is None else f"{check.total_error:+.1%}"
    out.print(
        f"total: predicted {check.total_predicted:,.1f}, actual {check.total_actual:,} "
        f"({relative}); mean absolute error per customer {check.mean_absolute_error:.3f}"
    )
