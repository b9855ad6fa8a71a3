"""Operations: ``/v1/status``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from consumers.pipeline import DEFAULT_CONSUMER
from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response
from engage.runtime import Engine
from events.log import TOUCHPOINTS, TRIGGERS, lag
from events.timefmt import format_optional

router = APIRouter()


def status_of(engine: Engine) -> dict[str, Any]:
    heads = engine.stream.heads(TOUCHPOINTS)
    offsets = engine.store.offsets(DEFAULT_CONSUMER, TOUCHPOINTS)
    return {
        "log_events": sum(heads.values()),
        "triggers": sum(engine.stream.heads(TRIGGERS).values()),
        "profiles": engine.store.count(),
        "dead_letters": engine.dead_letters.count(),
        "lag": lag(heads, offsets),
        "clock": format_optional(engine.store.clock(DEFAULT_CONSUMER)),
    }


@router.get(
    "/v1/status",
    summary="Log size, lag, profiles and DLQ size",
    responses={200: {"model": models.Status}, **errors(AUTH_ERRORS)},
)
def get_status(_: ReadKey, ctx: Context) -> Response:
    with ctx.borrow() as engine:
        return json_response(status_of(engine))


@router.get("/healthz", summary="Liveness and database reachability", response_model=models.Health)
def healthz(ctx: Context) -> Response:
    with ctx.borrow() as engine:
        engine.stream.heads(TOUCHPOINTS)
    return json_response({"status": "ok"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def get_metrics(ctx: Context) -> Response:
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)
