"""``GET /v1/triggers/latest``: who to contact now.

The newest fired triggers, filtered by rule, kind and a date range, as JSON
for the dashboard's "Who to contact now" list or as CSV for a spreadsheet or
a mailing tool. Kept apart from ``routes.triggers``: the feed there is for
machines that follow the stream in order; this is for people deciding whom
to call today.
"""

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response, parse_time
from engage.http.models import Trigger
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from projections.adapters.postgres_outbox import newest_triggers
from rules.arms import TREATMENT

router = APIRouter()

CSV_COLUMNS = ("fired_at", "customer_id", "rule_id", "kind", "details", "caused_by", "trigger_id")


class LatestTriggers(BaseModel):
    items: list[Trigger]
    kinds_by_rule: dict[str, str]
    """The loaded rules' kinds, for the filters."""


def latest(
    engine: Engine,
    rule_id: str | None,
    kind: str | None,
    since: int | None,
    until: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, delivered ones only (a held-out control trigger is
    nobody to contact); ``kind`` is judged on the decoded trigger (a rule that
    changed kind keeps its old triggers' kind)."""
    codec = TriggerCodec()
    found: list[dict[str, Any]] = []
    for payloads in newest_triggers(engine.dsn, rule_id, since, until, arm=TREATMENT):
        for t in codec.decode_many(payloads):
            if isinstance(t, CodecError) or (kind is not None and t.kind != kind):
                continue
            found.append(trigger_json(t))
            if len(found) >= limit:
                return found
    return found


def _csv(items: list[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for t in items:
        writer.writerow(
            [
                t["fired_at"],
                t["customer_id"],
                t["rule_id"],
                t["kind"],
                orjson.dumps(t["details"]).decode(),
                " ".join(t["caused_by"]),
                t["trigger_id"],
            ]
        )
    yield buffer.getvalue()


@router.get(
    "/v1/triggers/latest",
    summary="Who to contact now: the newest triggers, filtered, as JSON or CSV",
    description=(
        "Newest first. Filters: rule_id, kind, and fired_at in [since, until). "
        "format=csv answers text/csv with the columns " + ", ".join(CSV_COLUMNS) + "."
    ),
    responses={
        200: {
            "model": LatestTriggers,
            "content": {"text/csv": {}},
            "description": "The triggers (JSON), or a CSV file with format=csv.",
        },
        **errors(AUTH_ERRORS),
    },
)
async def latest_triggers(
    _: ReadKey,
    ctx: Context,
    rule_id: str | None = None,
    kind: str | None = None,
    since: Annotated[
        str | None, Query(description="Fired at or after this ISO 8601 instant.")
    ] = None,
    until: Annotated[str | None, Query(description="Fired before this ISO 8601 instant.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response:
    # an empty filter field in the dashboard's form means "no filter"
    start, end = parse_time(since or None, "since"), parse_time(until or None, "until")
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, "until: must be later than since")

    def work() -> list[dict[str, Any]]:
        with ctx.borrow() as engine:
            return latest(engine, rule_id or None, kind or None, start, end, limit)

    items = await run_in_threadpool(work)
    if format == "csv":
        return Response(
            "".join(_csv(items)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="contact-now.csv"'},
        )
    rules = ctx.config.rules
    kinds_by_rule = {r.id: r.kind for r in rules.rules} if rules is not None else {}
    return json_response({"items": items, "kinds_by_rule": kinds_by_rule})
