"""Segment's HTTP Tracking API, so Segment's and RudderStack's SDKs send here unchanged.

``POST /v1/batch`` (and ``/v1/import``) take ``{"batch": [...]}``; ``/v1/track``,
``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group`` and ``/v1/alias``
take one message. Each message is mapped by ``events.segment`` and validated
and published by the same step as ``POST /v1/events`` (``publish_items``).

The answers are Segment's, because the SDKs act on them: 200 when the
request was taken, duplicates and events rejected by validation included
(those go to the dead-letter store, as Segment drops them, so the SDK never
retries a bad event forever); 400 only for a body that is not JSON or is too
large (32 KB for one message, 500 KB for a batch, after gzip); 429 with
``Retry-After`` when too many ingest requests are in flight. A missing or
wrong key is 401 (scope 403): the SDKs report it to ``on_error`` and do not
retry it. Error bodies carry Segment's ``code`` and ``message``.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, Final

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engage.http import models
from engage.http.deps import AppContext, Context, check_key, errors, json_response
from engage.http.ingest import IngestRefused, decode_body, publish_items
from engage.runtime import wall_micros
from events.ingest import Rejection
from events.shapes import segment_mapper
from events.timefmt import format_iso_exact

router = APIRouter(tags=["Segment-compatible ingest"])

MAX_MESSAGE: Final = 32 * 1024
MAX_BATCH: Final = 500 * 1024
CALLS: Final = ("track", "identify", "page", "screen", "group", "alias")


def _answer(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"success": False, "code": code, "message": message, "error": message}
    response = json_response(body, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when sent with ``Content-Encoding: gzip``; over
    ``limit`` (compressed or not) is Segment's 400."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refused(_answer(400, "too_large", f"request body over {limit} bytes"))
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise _Refused(_answer(400, "too_large", f"request body over {limit} bytes"))
    if request.headers.get("content-encoding", "").lower() != "gzip":
        return bytes(raw)
    inflate = zlib.decompressobj(wbits=31)
    try:
        body = inflate.decompress(bytes(raw), limit + 1)
    except zlib.error as exc:
        raise _Refused(_answer(400, "invalid_gzip", f"body is not valid gzip: {exc}")) from None
    if len(body) > limit or inflate.unconsumed_tail:
        raise _Refused(_answer(400, "too_large", f"request body over {limit} bytes unzipped"))
    return body


def _header_key(request: Request) -> str | None:
    """The key from Basic auth (the key as user, empty password) or Bearer."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.partition(":")[0] or None
    return None


def _write_key(request: Request, body: bytes) -> str | None:
    key = _header_key(request)
    if key is not None:
        return key
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = decoded.get("writeKey") if isinstance(decoded, dict) else None
    return found if isinstance(found, str) else None


def _too_big(messages: list[Any]) -> list[Rejection | None]:
    """Per message, a rejection when it is over Segment's 32 KB."""
    out: list[Rejection | None] = []
    for index, msg in enumerate(messages):
        size = len(orjson.dumps(msg))
        if size > MAX_MESSAGE:
            reason = f"message is {size} bytes; Segment's limit is {MAX_MESSAGE}"
            out.append(Rejection(index + 1, "(event)", reason, orjson.dumps(msg).decode()))
        else:
            out.append(None)
    return out


async def _ingest(request: Request, ctx: AppContext, kind: str | None) -> Response:
    if not ctx.ingest_slots.acquire(blocking=False):
        return _answer(429, "too_many_requests", "overloaded; retry", {"Retry-After": "1"})
    try:
        limit = MAX_BATCH if kind is None else MAX_MESSAGE
        try:
            body = await _body(request, limit)
        except _Refused as refused:
            return refused.response
        try:
            key = check_key(ctx, _write_key(request, body), "ingest")
        except HTTPException as exc:
            code = "unauthorized" if exc.status_code == 401 else "forbidden"
            return _answer(exc.status_code, code, str(exc.detail))
        received_at = format_iso_exact(wall_micros())

        def work() -> dict[str, Any]:
            with ctx.borrow() as engine, engine.publishing() as publisher:
                decoded = decode_body(publisher, body, f"http:{key.name}")
                if kind is None:
                    batch = decoded.get("batch") if isinstance(decoded, dict) else None
                    if not isinstance(batch, list):
                        raise IngestRefused(400, 'a batch body is {"batch": [messages...]}')
                    messages, early = batch, _too_big(batch) if len(body) > MAX_MESSAGE else []
                else:
                    messages, early = [decoded], []
                mapper = segment_mapper(kind, received_at)
                report, _ = publish_items(publisher, messages, key.name, lambda _m: mapper, early)
                return {
                    "success": True,
                    "accepted": report.accepted,
                    "duplicate": report.duplicates,
                    "rejected": report.rejected,
                }

        try:
            result = await run_in_threadpool(work)
        except IngestRefused as exc:
            return _answer(400, "invalid_request", exc.message)
        ctx.metrics.count_ingest(result)
        return json_response(result)
    finally:
        ctx.ingest_slots.release()


_DOC: Final = (
    "Segment's HTTP Tracking API (its SDKs and RudderStack's send here unchanged). "
    "The key is an ingest key: `writeKey` in the body, Basic auth (key as user, empty "
    "password) or Bearer. Gzip bodies are accepted. 200 for accepted, duplicate and "
    "rejected events (rejected ones go to the dead-letter store); 400 only for invalid "
    "JSON or an oversized body (32 KB per message, 500 KB per batch); 429 with Retry-After "
    "under overload. Mapping: docs/ingest.md."
)


_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": models.SegmentResponse, "description": "Taken (rejections in the DLQ)."},
    **errors(
        {
            400: "Not JSON, not gzip, or over 32 KB (one message) / 500 KB (a batch).",
            401: "No key, or an unknown or revoked one.",
            403: "Not an ingest key.",
            429: "Overloaded: retry after Retry-After seconds.",
        }
    ),
}
_BODY: Final = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}


def _endpoint(kind: str | None, name: str) -> Any:
    async def endpoint(request: Request, ctx: Context) -> Response:
        return await _ingest(request, ctx, kind)

    endpoint.__name__ = f"segment_{name}"
    return endpoint


_ROUTES: Final = (
    ("batch", None, "a batch of messages"),
    ("import", None, "a batch of historical messages"),
    *((call, call, f"one {call} call") for call in CALLS),
)

for _name, _kind, _what in _ROUTES:
    router.add_api_route(
        f"/v1/{_name}",
        _endpoint(_kind, _name),
        methods=["POST"],
        summary=f"Segment: {_what}",
        description=_DOC,
        responses=_RESPONSES,
        openapi_extra=_BODY,
    )
