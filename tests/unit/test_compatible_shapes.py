"""Segment and CloudEvents messages -> native touchpoints, through the one validator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.ingest import Rejection
from events.model import Touchpoint
from events.segment import SPEC_EVENTS, from_segment
from events.shapes import parse_shaped, shape_of

T = "2026-03-01T10:00:00Z"


def seg(**fields: Any) -> dict[str, Any]:
    return {"messageId": "m1", "userId": "u1", "timestamp": T, **fields}


def ok(obj: object, shape: str = "segment") -> Touchpoint:
    item = parse_shaped(obj, 1, shape)  # type: ignore[arg-type]
    assert isinstance(item, Touchpoint), item
    return item


def rejected(obj: object, shape: str = "segment") -> Rejection:
    item = parse_shaped(obj, 1, shape)  # type: ignore[arg-type]
    assert isinstance(item, Rejection), item
    return item


def test_order_completed_is_a_purchase_with_revenue_as_amount() -> None:
    tp = ok(
        seg(
            type="track",
            event="Order Completed",
            properties={"order_id": "o1", "revenue": 25.5, "currency": "eur", "coupon": "X"},
        )
    )
    assert (tp.event_id, tp.customer_id, tp.type) == ("m1", "u1", "purchase")
    assert tp.properties["amount"] == 25.5 and tp.properties["currency"] == "EUR"
    assert tp.extra == {"coupon": "X"}
    total = ok(seg(type="track", event="Order Completed", properties={"order_id": "o", "total": 9}))
    assert total.properties["amount"] == 9


def test_a_missing_amount_is_reported_in_segment_terms() -> None:
    bad = rejected(seg(type="track", event="Order Completed", properties={"order_id": "o"}))
    assert bad.field == "properties.revenue" and "revenue or total" in bad.reason
    negative = rejected(
        seg(type="track", event="Order Completed", properties={"order_id": "o", "total": -1})
    )
    assert negative.field == "properties.total" and "0 or more" in negative.reason


@pytest.mark.parametrize(
    ("event", "native"),
    [
        ("Email Opened", "email_opened"),
        ("Email Delivered", "email_sent"),
        ("Email Link Clicked", "email_clicked"),
    ],
)
def test_email_spec_events(event: str, native: str) -> None:
    props = {"campaign_id": "spring", "email_id": "e-9", "link_url": "https://x.test"}
    tp = ok(seg(type="track", event=event, properties=props))
    assert tp.type == native and tp.channel == "email"
    assert tp.properties["campaign_id"] == "spring" and tp.properties["message_id"] == "e-9"


def test_unsubscribed_and_refund() -> None:
    assert ok(seg(type="track", event="Unsubscribed", properties={"list_id": "n"})).type == (
        "unsubscribed"
    )
    refund = ok(seg(type="track", event="Order Refunded", properties={"order_id": "o", "total": 3}))
    assert refund.type == "refund" and refund.properties["amount"] == 3


def test_page_is_a_web_visit_and_identify_keeps_traits() -> None:
    page = ok(seg(type="page", name="Home", properties={"url": "https://s.test/", "title": "Hi"}))
    assert page.type == "web_visit" and page.properties["url"] == "https://s.test/"
    assert page.extra["title"] == "Hi" and page.extra["page_name"] == "Home"
    from_context = ok(seg(type="page", context={"page": {"url": "https://s.test/a"}}))
    assert from_context.properties["url"] == "https://s.test/a"
    assert rejected(seg(type="page")).field == "properties.url"
    who = ok(seg(type="identify", traits={"email": "a@b.test", "firstName": "Ada", "plan": 2}))
    assert who.type == "identify" and who.properties["email"] == "a@b.test"
    assert who.properties["name"] == "Ada" and who.properties["traits"]["plan"] == "2"


def test_unknown_calls_and_missing_ids_are_rejected_with_the_field() -> None:
    assert rejected(seg(type="launch")).field == "type"
    no_one = rejected({"messageId": "m", "type": "track", "event": "X", "timestamp": T})
    assert no_one.field == "userId"
    assert rejected(seg(type="track")).field == "event"
    late = seg(type="track", event="Email Opened", timestamp="yesterday")
    assert rejected({**late, "properties": {"campaign_id": "c"}}).field == "timestamp"


def test_received_at_stands_in_for_a_missing_timestamp() -> None:
    msg = {"messageId": "m", "userId": "u", "type": "track", "event": "Order Completed"}
    mapped = from_segment({**msg, "properties": {"order_id": "o", "total": 1}}, None, T)
    assert mapped.obj["occurred_at"] == T


def test_a_message_without_message_id_gets_a_stable_one() -> None:
    msg = {"userId": "u", "type": "alias", "previousId": "anon-1", "timestamp": T}
    first, again = from_segment(msg), from_segment(dict(msg))
    assert first.obj["event_id"] == again.obj["event_id"]
    assert first.obj["event_id"].startswith("segment-")


def test_every_spec_event_maps_away_from_custom() -> None:
    for name in SPEC_EVENTS:
        msg = seg(type="track", event=name, properties={"revenue": 1})
        assert from_segment(msg).obj["type"] != "custom"


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=8)))
def test_a_custom_track_keeps_its_name_and_every_property(props: dict[str, Any]) -> None:
    mapped = from_segment(seg(type="track", event="Cart Abandoned", properties=props)).obj
    assert mapped["type"] == "custom" and mapped["properties"]["name"] == "Cart Abandoned"
    kept = dict(mapped["properties"])
    del kept["name"]
    if "name" in props:
        assert kept.pop("_name") == props["name"]
    assert kept == {k: v for k, v in props.items() if k != "name"}


def test_alias_screen_and_group_are_kept_as_custom_records() -> None:
    alias = from_segment(seg(type="alias", previousId="anon-7")).obj
    assert alias["type"] == "custom" and alias["properties"] == {
        "name": "identity-alias",
        "previous_id": "anon-7",
        "user_id": "u1",
    }
    screen = from_segment(seg(type="screen", name="Cart")).obj
    assert screen["properties"]["name"] == "Screen Viewed" and screen["channel"] == "app"
    group = from_segment(seg(type="group", groupId="g1", traits={"name": "Acme"})).obj
    assert group["properties"] == {"name": "Group", "group_id": "g1", "_name": "Acme"}


def ce(**fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "c1",
        "source": "/shop",
        "subject": "u1",
        "time": T,
        **fields,
    }


def test_cloudevents_map_type_subject_time_source_and_data() -> None:
    tp = ok(
        ce(type="com.example.shop.purchase", data={"order_id": "o", "amount": 5}), "cloudevents"
    )
    assert (tp.event_id, tp.customer_id, tp.type, tp.source) == ("c1", "u1", "purchase", "/shop")
    assert tp.properties["amount"] == 5
    bad = rejected(ce(type="purchase", data={"order_id": "o", "amount": "x"}), "cloudevents")
    assert bad.field == "data.amount"
    assert rejected(ce(type="purchase", specversion="0.3"), "cloudevents").field == "specversion"
    no_subject = ce(type="purchase")
    del no_subject["subject"]
    assert rejected(no_subject, "cloudevents").field == "subject"


def test_shape_detection() -> None:
    assert shape_of(ce(type="x")) == "cloudevents"
    assert shape_of(seg(type="track")) == "segment"
    assert shape_of({"event_id": "e", "customer_id": "c"}) == "native"
    assert shape_of([1]) == "native"
