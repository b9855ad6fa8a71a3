"""``POST /v1/events``: a request body in, per-event results out.

Parsing the body is the HTTP part; each element then goes through the one
validator (``events.ingest.parse_object``) and the one publisher, exactly as
``engage publish`` does, so a rejected event lands in the dead-letter store
with its raw text (source ``http:<key name>``, line = its 1-based position in
the batch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson

from events.ingest import Mapper, Rejection, parse_object
from events.model import Touchpoint
from events.publisher import Publisher, PublishReport


class IngestRefused(Exception):
    """The request as a whole was refused (nothing was stored)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_body(publisher: Publisher, body: bytes, source: str) -> Any:
    """The body as decoded JSON; a body that is not UTF-8 JSON is refused with
    400 and kept in the dead-letter store."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = body.decode("utf-8", errors="backslashreplace")
        reason = f"not valid UTF-8: {exc.reason} at byte {exc.start}"
        publisher.publish_events([], [Rejection(None, "(body)", reason, raw)], source)
        raise IngestRefused(400, f"request body is {reason}; send UTF-8 JSON") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raw = body.decode("utf-8", errors="backslashreplace")
        publisher.publish_events(
            [], [Rejection(None, "(body)", f"not valid JSON: {exc}", raw)], source
        )
        raise IngestRefused(400, f"request body is not valid JSON: {exc}") from None


def refuse_shape(publisher: Publisher, body: bytes, source: str, reason: str) -> IngestRefused:
    """A decoded body of the wrong shape: kept in the DLQ, refused with 422."""
    raw = body.decode("utf-8", errors="backslashreplace")
    publisher.publish_events([], [Rejection(None, "(body)", reason, raw)], source)
    return IngestRefused(422, f"request body {reason}")


def ingest_body(
    publisher: Publisher,
    body: bytes,
    key_name: str,
    max_events: int,
    mapper: Mapper | None = None,
    want: str = "any",
) -> tuple[int, dict[str, Any]]:
    """Publish a body of one event or an array; returns (HTTP status, response).

    ``mapper`` turns another shape (CloudEvents) into the native one; ``want``
    is ``object``, ``array`` or ``any`` (what the content type promises)."""
    source = f"http:{key_name}"
    decoded = decode_body(publisher, body, source)
    single = isinstance(decoded, dict)
    if single and want != "array":
        items: list[Any] = [decoded]
    elif isinstance(decoded, list) and want != "object":
        items = decoded
    else:
        expected = {"object": "an event object", "array": "an array of event objects"}
        raise refuse_shape(
            publisher,
            body,
            source,
            "must be " + expected.get(want, "an event object or an array of event objects"),
        )
    if len(items) > max_events:
        raise IngestRefused(
            413, f"at most {max_events} events per request, got {len(items)}; split the batch"
        )
    report, results = publish_items(publisher, items, key_name, lambda _obj: mapper)
    response: dict[str, Any] = {
        "accepted": report.accepted,
        "duplicate": report.duplicates,
        "rejected": report.rejected,
        "results": results,
    }
    if single and report.rejected:
        response["error"] = f"{results[0]['field']}: {results[0]['reason']}"
        return 422, response
    return 200, response


def publish_items(
    publisher: Publisher,
    items: Sequence[Any],
    key_name: str,
    mapper_of: Callable[[Any], Mapper | None],
    rejected: Sequence[Rejection | None] = (),
) -> tuple[PublishReport, list[dict[str, Any]]]:
    """Validate and publish decoded events (the one HTTP publish step for every
    shape): per-event results in order, rejections to the DLQ with their
    1-based position as the line. ``rejected[i]``, when given, refuses item i
    before validation (a Segment message over 32 KB)."""
    source = f"http:{key_name}"
    events: list[Touchpoint] = []
    positions: list[int] = []
    results: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for index, obj in enumerate(items):
        early = rejected[index] if index < len(rejected) else None
        parsed = early or parse_object(obj, index + 1, None, publisher.window, mapper_of(obj))
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
            results.append(_rejected(index, parsed))
            continue
        if parsed.source is None:  # the key names the upstream system
            parsed = replace(parsed, source=key_name)
        events.append(parsed)
        positions.append(index)
        results.append({"index": index, "event_id": parsed.event_id, "status": "accepted"})
    origins = [(i + 1, items[i]) for i in positions]
    report = publisher.publish_events(events, rejections, source, origins)
    if report.rejected > len(rejections):  # the codec refused some: per event, like validation
        for late in report.rejections[len(rejections) :]:
            assert late.line_no is not None
            results[late.line_no - 1] = _rejected(late.line_no - 1, late)
        stored = {i for i, r in enumerate(results) if r["status"] == "accepted"}
        kept = [(e, i) for e, i in zip(events, positions, strict=True) if i in stored]
        events, positions = [e for e, _ in kept], [i for _, i in kept]
    _mark_duplicates(report, events, positions, results)
    return report, results


def _rejected(index: int, rejection: Rejection) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": rejection.event_id,
        "status": "rejected",
        "field": rejection.field,
        "reason": rejection.reason,
    }


def _mark_duplicates(
    report: PublishReport,
    events: list[Touchpoint],
    positions: list[int],
    results: list[dict[str, Any]],
) -> None:
    """The log reports duplicate ids; the first occurrence of an id in the batch
    is the accepted one unless the id was already stored."""
    duplicates = Counter(report.duplicate_ids)
    occurrences = Counter(e.event_id for e in events)
    accepted_left = {eid: occurrences[eid] - n for eid, n in duplicates.items()}
    for event, index in zip(events, positions, strict=True):
        eid = event.event_id
        if eid not in accepted_left:
            continue
        if accepted_left[eid] > 0:
            accepted_left[eid] -= 1
        else:
            results[index]["status"] = "duplicate"
