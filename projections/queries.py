"""Read-side queries shared by the CLI and the HTTP API: one customer's 360
(now or as of an instant) and their timeline.

They take ports, not the Engine, so the composition roots (CLI, HTTP app)
stay thin and neither keeps its own copy of the as-of fold or the timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events.codec import CodecError, TouchpointCodec, TriggerCodec
from events.contract import touchpoint_json, trigger_json
from events.keyring import KeyRing
from events.model import Micros, Touchpoint
from events.ports import CustomerHistory, LogRecord, TriggerQuery
from events.sealing import unseal_events
from events.timefmt import format_iso
from projections.customer360 import customer_360
from projections.evolve import fold
from projections.ports import ProjectionStore
from projections.profile import Profile


def touchpoints(
    log: CustomerHistory,
    codec: TouchpointCodec,
    customer_id: str,
    until: int | None = None,
    keys: KeyRing | None = None,
) -> list[Touchpoint]:
    """The customer's touchpoints; with ``keys``, their personal fields opened
    (where the person's key still exists)."""
    records = log.customer_history(customer_id, until=until)
    events: list[Touchpoint] = []
    seen: set[str] = set()
    for item in codec.decode_many([r.payload for r in records]):
        # a Kafka log can hold a repeated event_id (the processor applies it
        # once) and cannot filter by event time before decoding
        if isinstance(item, CodecError) or item.event_id in seen:
            continue
        if until is not None and item.occurred_at > until:
            continue
        seen.add(item.event_id)
        events.append(item)
    return events if keys is None else unseal_events(events, keys)


def profile_as_of(
    log: CustomerHistory,
    codec: TouchpointCodec,
    customer_id: str,
    at: Micros,
    keys: KeyRing | None = None,
) -> Profile | None:
    """Fold the customer's events up to ``at`` from the log: the profile as it was."""
    events = touchpoints(log, codec, customer_id, at, keys)
    return fold(None, events, customer_id) if events else None


def unknown_customer(customer_id: str, as_of: str | None = None) -> str:
    """What the CLI and the HTTP API say when ``customer_view`` (or a timeline)
    finds nobody, so the two front ends word it alike."""
    when = "" if as_of is None else f" as of {as_of}"
    return f"unknown customer {customer_id!r}{when}"


def customer_view(
    log: CustomerHistory,
    store: ProjectionStore,
    codec: TouchpointCodec,
    customer_id: str,
    consumer: str,
    at: Micros | None = None,
    keys: KeyRing | None = None,
) -> dict[str, Any] | None:
    """The customer-360 JSON, current (judged by ``consumer``'s clock and the
    model its partitions adopted) or as of ``at`` (with the newest model fitted
    as of then: one that used nothing later); None for an unknown customer."""
    if at is None:
        found = store.get(customer_id)
        now = store.clock(consumer)
    else:
        found = profile_as_of(log, codec, customer_id, at, keys)
        now = at
    if found is None:
        return None
    model = store.model(consumer) if at is None else store.model_as_of(at)
    return customer_360(found, now if now is not None else (found.last_seen or 0), model)


def timeline(
    log: CustomerHistory, codec: TouchpointCodec, customer_id: str, keys: KeyRing | None = None
) -> list[dict[str, Any]]:
    """Touchpoints and the triggers they caused, in time order (a trigger after
    the touchpoints of its instant). A touchpoint item is flat (``kind``
    "touchpoint"); a trigger item is ``{"kind": "trigger", "occurred_at",
    "trigger": <trigger JSON>}``."""
    items: list[tuple[Micros, int, dict[str, Any]]] = [
        (e.occurred_at, 0, touchpoint_json(e))
        for e in touchpoints(log, codec, customer_id, keys=keys)
    ]
    trigger_codec = TriggerCodec()
    records: Sequence[LogRecord] = log.find_triggers(TriggerQuery(customer_id))
    for t in trigger_codec.decode_many([r.payload for r in records]):
        if isinstance(t, CodecError):
            continue
        # nested, so the trigger's own ``kind`` field keeps its contract meaning
        item = {
            "kind": "trigger",
            "occurred_at": format_iso(t.fired_at),
            "trigger": trigger_json(t),
        }
        items.append((t.fired_at, 1, item))
    items.sort(key=lambda item: (item[0], item[1]))
    return [item for _, _, item in items]
