"""Delivery feedback from the channel that sent a trigger's message:
``POST /v1/triggers/{id}/outcome`` with ``{"status": "opened"}``.

A report is checked whole before anything is written: a JSON object, a
``status`` of delivered, opened, clicked, bounced or failed, an optional
``at`` (ISO 8601 with a zone; default now) and ``source`` (the channel's
name), for a trigger that fired and was delivered (a control-arm trigger was
never sent, so feedback on one is refused). A refused report goes to the
dead-letter store with its raw text and the field and reason; a repeated one
(same trigger, same status) changes nothing and says so, so a channel may
retry freely.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
import psycopg

from events.adapters.connection import connect
from events.adapters.postgres import add_dead_letters
from events.model import SECOND
from events.timefmt import parse_iso
from projections.adapters.postgres_outcomes import add_feedback, trigger_arm
from projections.outcomes import FEEDBACK
from rules.arms import CONTROL

STAGE: Final = "outcome"
MAX_SOURCE: Final = 128


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class _Refused(Exception):
    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


def _check(body: bytes, key_name: str) -> tuple[str, int, str]:
    """(status, at, source) of a well-formed report, or ``_Refused``."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Refused(400, "(body)", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _Refused(422, "(body)", 'expected a JSON object such as {"status": "opened"}')
    unknown = sorted(set(value) - {"status", "at", "source"})
    if unknown:
        raise _Refused(422, unknown[0], "unknown field; allowed: status, at, source")
    status = value.get("status")
    if status not in FEEDBACK:
        raise _Refused(422, "status", f"expected one of {', '.join(FEEDBACK)}, got {status!r}")
    at = int(time.time() * SECOND)
    if "at" in value:
        if not isinstance(value["at"], str):
            raise _Refused(422, "at", "expected an ISO 8601 string with a zone")
        try:
            at = parse_iso(value["at"])
        except ValueError as exc:
            raise _Refused(422, "at", str(exc)) from None
    source = value.get("source", f"key:{key_name}")
    if not isinstance(source, str) or not 0 < len(source) <= MAX_SOURCE:
        raise _Refused(422, "source", f"expected a string of 1 to {MAX_SOURCE} characters")
    return status, at, source


def record_outcome(dsn: str, trigger_id: str, body: bytes, key_name: str) -> Answer:
    """Check and record one report; refused ones land in the dead-letter store."""
    raw = body.decode("utf-8", errors="replace")
    where = f"POST /v1/triggers/{trigger_id}/outcome"
    try:
        with connect(dsn) as conn, conn.transaction():
            try:
                status, at, source = _check(body, key_name)
                found = trigger_arm(conn, trigger_id)
                if found is None:
                    raise _Refused(404, "trigger_id", f"no trigger {trigger_id!r} was fired")
                rule_id, arm = found
                if arm == CONTROL:
                    raise _Refused(
                        409, "trigger_id", "the trigger is in the control arm: it was never sent"
                    )
            except _Refused as refused:
                add_dead_letters(
                    conn,
                    [(STAGE, where, None, trigger_id, refused.field, refused.reason, raw)],
                )
                return Answer(refused.status, {"error": f"{refused.field}: {refused.reason}"})
            new = add_feedback(conn, [(trigger_id, status, rule_id, arm, source, at)])
    except psycopg.Error as exc:
        return Answer(503, {"error": f"the database is unavailable; retry shortly ({exc})"})
    return Answer(200, {"trigger_id": trigger_id, "status": status, "recorded": new > 0})
