"""The right of access: ``engage privacy export ID`` and
``GET /v1/customers/{id}/export``: everything held about a person, with their
sealed fields opened, as one JSON document."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engage.database import connect
from engage.erasure import receipts
from engage.errors import NotFound
from events.codec import CodecError, TriggerCodec
from events.contract import touchpoint_json, trigger_json
from events.ports import TriggerQuery
from events.sealing import unseal_texts
from events.timefmt import format_iso
from projections.queries import touchpoints

if TYPE_CHECKING:
    from engage.runtime import Engine


def export_person(engine: Engine, person: str, now_iso: str) -> dict[str, Any]:
    """Profile, events (decrypted), triggers, dead letters, webhook deliveries,
    key and suppression state, erasure receipts. NotFound when nothing is held."""
    view = engine.customer_view(person)
    events = [
        {**touchpoint_json(e), "customer_id": e.customer_id, "extra": e.extra}
        for e in touchpoints(engine.stream, engine.codec, person, keys=engine.keys)
    ]
    triggers = [
        trigger_json(t)
        for t in TriggerCodec().decode_many(
            [r.payload for r in engine.stream.find_triggers(TriggerQuery(person))]
        )
        if not isinstance(t, CodecError)
    ]
    with connect(engine.dsn, autocommit=True) as conn:
        letters = conn.execute(
            "SELECT id, stage, source, line_no, event_id, field, reason, raw,"
            " to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM dead_letters WHERE person = %s ORDER BY id",
            (person,),
        ).fetchall()
        ids = [t["trigger_id"] for t in triggers]
        deliveries = conn.execute(
            "SELECT subscription_id, trigger_id, state, attempts, body FROM webhook_queue"
            " WHERE trigger_id = ANY(%s) ORDER BY trigger_id",
            (ids,),
        ).fetchall()
        attempts = conn.execute(
            "SELECT subscription_id, trigger_id, attempt, status_code, error, outcome,"
            " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM webhook_attempts WHERE trigger_id = ANY(%s) ORDER BY id",
            (ids,),
        ).fetchall()
        suppressed = bool(engine.keys.suppressed([person]))
        erasures = [r.as_json() for r in receipts(conn, person)]
    raws = unseal_texts([str(r[7]) for r in letters], engine.keys)
    held = {
        "person": person,
        "generated_at": now_iso,
        "profile": view,
        "events": events,
        "triggers": triggers,
        "dead_letters": [
            {
                "id": r[0],
                "stage": r[1],
                "source": r[2],
                "line": r[3],
                "event_id": r[4],
                "field": r[5],
                "reason": r[6],
                "raw": raw,
                "received_at": r[8],
            }
            for r, raw in zip(letters, raws, strict=True)
        ],
        "webhook_deliveries": [
            {
                "subscription_id": r[0],
                "trigger_id": r[1],
                "state": r[2],
                "attempts": r[3],
                "body": r[4],
            }
            for r in deliveries
        ],
        "webhook_attempts": [
            {
                "subscription_id": r[0],
                "trigger_id": r[1],
                "attempt": r[2],
                "status_code": r[3],
                "error": r[4],
                "outcome": r[5],
                "at": r[6],
            }
            for r in attempts
        ],
        "key": dict(info) if (info := engine.keys.key_info(person)) is not None else None,
        "suppressed": suppressed,
        "erasures": erasures,
    }
    if view is None and not events and not triggers and not letters and not erasures:
        raise NotFound(f"nothing is held about {person!r}")
    return held


def now_iso() -> str:
    return format_iso(time.time_ns() // 1_000)
