"""``GET /v1/kpis``: KPI rollups per period, as ``engage kpis --json``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from consumers.pipeline import DEFAULT_CONSUMER
from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response
from engage.http.kpi_view import pyramid
from projections.adapters.postgres_kpis import read_kpis

router = APIRouter()


@router.get(
    "/v1/kpis",
    summary="KPI rollups per period, from lifecycle stage and channel to the business",
    description=(
        "The processor keeps the KPIs current as it folds (`engage kpis --json` prints "
        "the same report). `pyramid` condenses the all-time totals into levels from "
        "the whole business down to one customer, for the dashboard."
    ),
    responses={200: {"model": models.Kpis}, **errors(AUTH_ERRORS)},
)
def get_kpis(
    _: ReadKey,
    ctx: Context,
    by: Annotated[str, Query(pattern="^(day|week|month)$")] = "week",
    last: Annotated[int | None, Query(ge=1, le=1000, description="Latest N periods")] = None,
) -> Response:
    with ctx.borrow() as engine:
        report = read_kpis(engine.dsn, DEFAULT_CONSUMER, by)
    report["currency"] = ctx.settings.currency
    if last is not None:
        report["periods"] = report["periods"][-last:]
    report["pyramid"] = pyramid(report)
    return json_response(report)
