"""Closed loop over HTTP: ``GET /v1/outcomes`` (conversions and uplift per
rule and arm, as ``engage outcomes --json``) and ``POST
/v1/triggers/{id}/outcome`` (delivery feedback from the sending channel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engage.feedback import record_outcome
from engage.http import models
from engage.http.deps import (
    AUTH_ERRORS,
    Context,
    IngestKey,
    ReadKey,
    errors,
    json_body,
    json_response,
    parse_time,
)
from engage.http.routes.events import read_body
from engage.outcomes import outcomes_report
from projections.outcomes import FEEDBACK

router = APIRouter()


@router.get(
    "/v1/outcomes",
    summary="Conversions and uplift per rule and arm",
    description=(
        "Per rule and arm (treatment: delivered; control: held out), the triggers, "
        "conversions (the first goal event within the rule's goal window), conversion "
        "rate, revenue, time to convert and delivery feedback; the uplift (treatment "
        "rate minus control rate) with a 95% Newcombe interval once both arms have "
        "triggers. `since` counts the triggers fired at or after an instant."
    ),
    responses={200: {"model": models.Outcomes}, **errors(AUTH_ERRORS)},
)
def get_outcomes(
    _: ReadKey,
    ctx: Context,
    rule_id: str | None = None,
    since: Annotated[
        str | None, Query(description="Only triggers fired at or after (ISO 8601).")
    ] = None,
) -> Response:
    since_us = parse_time(since, "since")
    with ctx.borrow() as engine:
        return json_response({"rules": outcomes_report(engine, rule_id, since_us)})


@router.post(
    "/v1/triggers/{trigger_id}/outcome",
    summary="Report what happened to a delivered trigger's message",
    description=(
        'For the channel that sent the message: `{"status": "opened"}` with one of '
        f"{', '.join(FEEDBACK)}; optional `at` (ISO 8601, default now) and `source`. "
        "Repeating a report is harmless (`recorded` is then false). A refused report "
        "is kept with its raw text in the dead-letter store. Needs an ingest key."
    ),
    responses={
        200: {"model": models.FeedbackRecorded},
        **errors(
            {
                400: "The body is not valid JSON.",
                **AUTH_ERRORS,
                404: "No trigger with this id was fired.",
                409: "The trigger is in the control arm: it was never sent.",
                413: "The body is too large.",
                422: "A bad status, at or source.",
            }
        ),
    },
    openapi_extra=json_body(
        {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": list(FEEDBACK)},
                "at": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "minLength": 1, "maxLength": 128},
            },
            "additionalProperties": False,
        }
    ),
)
async def post_outcome(
    request: Request,
    key: IngestKey,
    ctx: Context,
    trigger_id: Annotated[str, Path(min_length=1, max_length=128)],
) -> Response:
    body = await read_body(request, ctx.config.max_body)

    def work() -> Response:
        with ctx.borrow() as engine:
            answer = record_outcome(engine.dsn, trigger_id, body, key.name)
        return json_response(answer.body, answer.status)

    return await run_in_threadpool(work)
