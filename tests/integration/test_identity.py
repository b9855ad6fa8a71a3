"""Identity on real PostgreSQL, end to end through the publish step and the
processor: events are keyed by person at the door, and the processor
re-derives a person when an identity record reaches it."""

from __future__ import annotations

from typing import Any

from engage.runtime import Engine
from events.codec import TriggerCodec
from events.log import TRIGGERS, read_stream
from events.timefmt import parse_iso
from tests.helpers import lines, profiles_by_id, publish

NOW = parse_iso("2026-03-01T00:00:00Z")


def ev(
    eid: str,
    type_: str,
    when: str,
    customer: str | None = None,
    anonymous: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": eid, "type": type_, "occurred_at": when}
    if customer is not None:
        out["customer_id"] = customer
    if anonymous is not None:
        out["anonymous_id"] = anonymous
    out["properties"] = properties
    return out


def run(engine: Engine) -> None:
    engine.processor().run(until_idle=True, now=NOW)


def triggers(engine: Engine) -> list[tuple[str, str]]:
    codec = TriggerCodec()
    return sorted(
        (t.rule_id, t.customer_id)
        for chunk in read_stream(engine.log, TRIGGERS)
        for t in codec.decode_many([r.payload for r in chunk])
        if not isinstance(t, Exception)
    )


def test_an_anonymous_browse_then_a_purchase_is_one_person(engine: Engine) -> None:
    report = publish(
        engine,
        lines(
            ev("e1", "web_visit", "2026-02-01T10:00:00Z", anonymous="dev-1", url="https://x/a"),
            ev("e2", "web_visit", "2026-02-01T10:05:00Z", anonymous="dev-1", url="https://x/b"),
        ),
    )
    assert report.accepted == 2
    run(engine)
    assert profiles_by_id(engine)["dev-1"]["event_count"] == 2
    publish(
        engine,
        lines(
            ev("e3", "purchase", "2026-02-01T10:10:00Z", customer="c-1", anonymous="dev-1",
               order_id="o1", amount=40.0),
        ),
    )  # fmt: skip
    run(engine)
    profiles = profiles_by_id(engine)
    assert "dev-1" not in profiles
    assert profiles["c-1"]["event_count"] == 3
    assert profiles["c-1"]["order_count"] == 1
    assert ("first-purchase-thank-you", "c-1") in triggers(engine)


def test_one_thank_you_per_person_across_a_merge(engine: Engine) -> None:
    """The device bought anonymously (its own thank-you); when it is linked to
    a customer who then buys, the merged person gets no second one."""
    publish(
        engine,
        lines(
            ev("a1", "purchase", "2026-02-01T10:00:00Z", anonymous="dev-9", order_id="o1",
               amount=10.0),
        ),
    )  # fmt: skip
    run(engine)
    publish(
        engine,
        lines(
            ev("a2", "identify", "2026-02-02T10:00:00Z", customer="c-9", anonymous="dev-9"),
            ev("a3", "purchase", "2026-02-03T10:00:00Z", customer="c-9", order_id="o2",
               amount=15.0),
        ),
    )  # fmt: skip
    run(engine)
    fired = [t for t in triggers(engine) if t[0] == "first-purchase-thank-you"]
    assert fired == [("first-purchase-thank-you", "dev-9")]
    profile = profiles_by_id(engine)["c-9"]
    assert profile["order_count"] == 2
