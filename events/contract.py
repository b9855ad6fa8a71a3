"""The public JSON shapes of triggers and timeline items (DESIGN.md contracts).

One definition shared by the CLI, the HTTP API and webhook delivery, so the
three can never drift apart: field names here are a public contract.
"""

from __future__ import annotations

from typing import Any

from events.model import Touchpoint, TriggerEvent
from events.timefmt import format_iso


def trigger_json(t: TriggerEvent) -> dict[str, Any]:
    """The trigger contract of DESIGN.md (field names are public)."""
    return {
        "trigger_id": t.trigger_id,
        "rule_id": t.rule_id,
        "rule_version": t.rule_version,
        "kind": t.kind,
        "customer_id": t.customer_id,
        "fired_at": format_iso(t.fired_at),
        "caused_by": list(t.caused_by),
        "details": t.details,
        "arm": t.arm,
    }


def touchpoint_json(e: Touchpoint) -> dict[str, Any]:
    """One touchpoint as a timeline item."""
    return {
        "kind": "touchpoint",
        "event_id": e.event_id,
        "type": e.type,
        "channel": e.channel,
        "occurred_at": format_iso(e.occurred_at),
        "source": e.source,
        "properties": e.properties,
    }
