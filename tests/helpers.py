"""Small builders for crafted histories in the ingest JSON format."""

from __future__ import annotations

from typing import Any

import orjson

from engage.runtime import Engine
from events.publisher import PublishReport
from projections.customer360 import customer_360


def event(
    event_id: str, customer_id: str, type_: str, occurred_at: str, **properties: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "type": type_,
        "occurred_at": occurred_at,
        "properties": properties,
    }


def lines(*events: dict[str, Any]) -> list[str]:
    return [orjson.dumps(e).decode() for e in events]


def publish(engine: Engine, raw_lines: list[str], source: str = "test") -> PublishReport:
    return engine.publisher().publish_lines(raw_lines, source)


def profiles_by_id(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every stored profile's full state (not the view), for exact comparisons."""
    with engine.store.transaction() as tx:
        ids = engine.store.sample_ids(10**9)
        found = tx.load_profiles(ids)
    return {cid: p.to_state() for cid, p in found.items()}


def view(engine: Engine, customer_id: str) -> dict[str, Any]:
    found = engine.store.get(customer_id)
    assert found is not None, f"no profile for {customer_id}"
    clock = engine.store.clock("engage-processor")
    assert clock is not None
    return customer_360(found, clock)
