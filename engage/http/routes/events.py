"""``POST /v1/events``: publish one event or a batch in the JSON ingest format."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, IngestKey, errors, json_response
from engage.http.ingest import IngestRefused, ingest_body
from engage.http.serve_config import MAX_EVENTS
from events.ingest import Mapper
from events.shapes import cloudevents_mapper

router = APIRouter()

CLOUDEVENT: Final = "application/cloudevents+json"
CLOUDEVENTS_BATCH: Final = "application/cloudevents-batch+json"
_SHAPES: Final[dict[str, tuple[Mapper | None, str]]] = {
    CLOUDEVENT: (cloudevents_mapper, "object"),
    CLOUDEVENTS_BATCH: (cloudevents_mapper, "array"),
}
"""CloudEvents 1.0 structured and batch mode, told apart by the content type
(as the CloudEvents HTTP binding says); anything else is the native format."""

_EVENT_SCHEMA = models.event_schema()


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_body``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise HTTPException(413, f"request body over {max_body} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise HTTPException(413, f"request body over {max_body} bytes")
    return bytes(body)


@router.post(
    "/v1/events",
    summary="Publish one event or a batch",
    description=(
        "The body is one event object or an array of up to "
        f"{MAX_EVENTS} of them (the server's default), in the JSON ingest format. Each "
        "event gets a result: accepted, duplicate (its event_id was seen before: stored "
        "once) or rejected (with the field and reason; it is kept with its raw text in the "
        "dead-letter store). A batch answers 200 even when some events were rejected; "
        "a single rejected event answers 422. Needs an ingest key. CloudEvents 1.0 are "
        f"accepted too: one event as `{CLOUDEVENT}`, an array as `{CLOUDEVENTS_BATCH}` "
        "(id, subject, time, source, type and data; see docs/ingest.md)."
    ),
    responses={
        200: {"model": models.IngestResponse, "description": "Per-event results."},
        **errors(
            {
                400: "The body is not valid JSON.",
                **AUTH_ERRORS,
                413: "The body or the batch is too large.",
                422: "A single event was rejected, or the body is not an event or array.",
            }
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _EVENT_SCHEMA,
                            {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_EVENTS},
                        ]
                    }
                },
                CLOUDEVENT: {"schema": {"type": "object"}},
                CLOUDEVENTS_BATCH: {
                    "schema": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_EVENTS}
                },
            },
        }
    },
)
async def post_events(request: Request, key: IngestKey, ctx: Context) -> Response:
    body = await read_body(request, ctx.config.max_body)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    mapper, want = _SHAPES.get(media, (None, "any"))

    def work() -> tuple[int, dict[str, Any]]:
        with ctx.borrow() as engine, engine.publishing() as publisher:
            return ingest_body(publisher, body, key.name, ctx.config.max_events, mapper, want)

    try:
        status, result = await run_in_threadpool(work)
    except IngestRefused as exc:
        raise HTTPException(exc.status, exc.message) from None
    ctx.metrics.count_ingest(result)
    return json_response(result, status)
