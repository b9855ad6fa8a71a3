"""The trigger feed (cursor-paginated, in log order) and triggers per rule
over time for the dashboard's charts."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import Response

from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response, parse_time
from engage.http.paging import decode_cursor, encode_cursor
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.log import TRIGGERS
from events.model import DAY, HOUR
from events.timefmt import format_iso

router = APIRouter()

FEED_SCAN: Final = 10
"""Reads per request before an empty filtered page is returned with has_more."""


@router.get(
    "/v1/triggers",
    summary="The trigger feed, cursor-paginated",
    description=(
        "Triggers in log order (per customer: in order). Start without a cursor (from "
        "the beginning) or with cursor=latest (only new ones), then pass each "
        "response's next_cursor to continue exactly where you stopped. With filters, a "
        "page may be empty while has_more is true (a stretch without matches was "
        "skipped): keep following next_cursor. At the end of the feed an empty page "
        "returns the same cursor, to poll again later."
    ),
    responses={
        200: {"model": models.TriggerPage},
        **errors({400: "Bad cursor.", **AUTH_ERRORS, 422: "Bad parameter."}),
    },
)
def get_triggers(
    _: ReadKey,
    ctx: Context,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    rule_id: str | None = None,
    kind: str | None = None,
    customer_id: str | None = None,
    since: Annotated[
        str | None, Query(description="Only triggers fired at or after (ISO 8601).")
    ] = None,
) -> Response:
    since_us = parse_time(since, "since")
    codec = TriggerCodec()
    with ctx.borrow() as engine:
        partitions = engine.stream.partitions
        if cursor == "latest":
            positions = engine.stream.heads(TRIGGERS)
            positions = {p: positions.get(p, 0) for p in range(partitions)}
        elif cursor:
            positions = decode_cursor(cursor, partitions)
        else:
            positions = dict.fromkeys(range(partitions), 0)
        items: list[dict[str, Any]] = []
        has_more = False
        for _scan in range(FEED_SCAN):
            per = max(limit, 200)
            records = engine.stream.read(TRIGGERS, positions, per)
            if not records:
                break
            decoded = codec.decode_many([r.payload for r in records])
            full = False
            for record, t in zip(records, decoded, strict=True):
                if len(items) >= limit:
                    full = True
                    break
                positions[record.partition] = record.offset + 1
                if isinstance(t, CodecError):
                    continue
                if (
                    (rule_id is None or t.rule_id == rule_id)
                    and (kind is None or t.kind == kind)
                    and (customer_id is None or t.customer_id == customer_id)
                    and (since_us is None or t.fired_at >= since_us)
                ):
                    items.append(trigger_json(t))
            per_partition: dict[int, int] = {}
            for record in records:
                per_partition[record.partition] = per_partition.get(record.partition, 0) + 1
            if full or any(n >= per for n in per_partition.values()):
                has_more = True
            if full or items:
                break
    return json_response(
        {"items": items, "next_cursor": encode_cursor(positions), "has_more": has_more}
    )


@router.get(
    "/v1/triggers/stats",
    summary="Triggers per rule over time (for charts)",
    responses={200: {"model": models.TriggerStats}, **errors(AUTH_ERRORS)},
)
def trigger_stats(
    _: ReadKey,
    ctx: Context,
    bucket: Annotated[str, Query(pattern="^(hour|day|week)$")] = "day",
    since: str | None = None,
) -> Response:
    since_us = parse_time(since, "since")
    width = {"hour": HOUR, "day": DAY, "week": 7 * DAY}[bucket]
    with ctx.borrow() as engine:
        rows = engine.store.trigger_histogram(width, since_us)
        totals = engine.store.trigger_counts()
    series: dict[str, list[list[int | str]]] = {}
    for rule, start, n in rows:
        series.setdefault(rule, []).append([format_iso(start), n])
    return json_response(
        {
            "bucket": bucket,
            "totals": totals,
            "series": [{"rule_id": r, "points": p} for r, p in sorted(series.items())],
        }
    )
