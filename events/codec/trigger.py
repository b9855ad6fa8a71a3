"""Trigger events <-> single-object Avro, for the outbox and the triggers stream."""

from __future__ import annotations

from typing import Any

from events.codec.framing import SingleObjectCodec
from events.codec.json_text import dumps, loads
from events.codec.schemas import TRIGGER_SCHEMA, CodecError
from events.model import TriggerEvent


class TriggerCodec(SingleObjectCodec[TriggerEvent]):
    """Trigger events <-> single-object Avro, for the outbox and triggers stream."""

    _schema_name = TRIGGER_SCHEMA
    _first_field = "trigger_id"

    def _key(self, value: TriggerEvent) -> str:
        return value.trigger_id

    def _to_record(self, value: TriggerEvent) -> dict[str, Any]:
        return {
            "trigger_id": value.trigger_id,
            "rule_id": value.rule_id,
            "rule_version": value.rule_version,
            "kind": value.kind,
            "customer_id": value.customer_id,
            "fired_at": value.fired_at,
            "caused_by": list(value.caused_by),
            "details": dumps(value.details, f"trigger {value.trigger_id!r}: details"),
            "arm": value.arm,
        }

    def _from_record(self, record: dict[str, Any]) -> TriggerEvent:
        try:
            details = loads(record["details"])
        except (ValueError, RecursionError) as exc:
            raise CodecError(f"trigger {record['trigger_id']!r}: details is not JSON") from exc
        if not isinstance(details, dict):
            raise CodecError(f"trigger {record['trigger_id']!r}: details is not a JSON object")
        return TriggerEvent(
            record["trigger_id"],
            record["rule_id"],
            record["rule_version"],
            record["kind"],
            record["customer_id"],
            record["fired_at"],
            tuple(record["caused_by"]),
            details,
            record.get("arm", "treatment"),
        )
