"""Ingest validation: every rejection names the field and a reason to act on.

Upstream developers read these reasons in their CLI output and DLQ, so the
tests check the field exactly and that the reason mentions what was wrong
(the offending value or type, and what is expected), not merely that
something was rejected.
"""

from __future__ import annotations

import calendar
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.errors import EngageError
from events.ingest import IngestError, Rejection, parse_line, parse_object, validate
from events.model import EVENT_TYPES, Touchpoint
from events.timefmt import format_iso
from tests.unit.strategies import (
    CHANNELS,
    CONTRACT_PROPERTIES,
    DEFAULT_CHANNELS,
    json_values,
    to_ingest_json,
    touchpoints,
)

REQUIRED_EXAMPLES: dict[str, dict[str, Any]] = {
    "identify": {},
    "email_sent": {"campaign_id": "c-1"},
    "email_opened": {"campaign_id": "c-1"},
    "email_clicked": {"campaign_id": "c-1"},
    "unsubscribed": {},
    "subscribed": {},
    "web_visit": {"url": "https://shop.test/"},
    "purchase": {"order_id": "o-1", "amount": 10},
    "refund": {"order_id": "o-1", "amount": 10},
    "chat_started": {"conversation_id": "cv-1"},
    "chat_ended": {"conversation_id": "cv-1"},
    "support_case_opened": {"case_id": "k-1"},
    "support_case_closed": {"case_id": "k-1"},
    "survey_response": {"survey": "nps", "score": 9},
    "custom": {"name": "Product Viewed"},
}
REQUIRED_PAIRS = [
    (type_, name) for type_, (required, _) in CONTRACT_PROPERTIES.items() for name in required
]
ENVELOPE_REQUIRED = ("event_id", "customer_id", "type", "occurred_at")


def utc_micros(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> int:
    """Independent of ``events.timefmt``: calendar arithmetic on a UTC tuple."""
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


def ev(type_: str = "purchase", properties: Any = None, **envelope: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "event_id": "evt-1",
        "customer_id": "cust-1",
        "type": type_,
        "occurred_at": "2024-03-10T10:00:00Z",
        "properties": dict(REQUIRED_EXAMPLES[type_]) if properties is None else properties,
    }
    obj.update(envelope)
    return obj


def with_field(name: str, value: object) -> dict[str, Any]:
    obj = ev()
    obj[name] = value
    return obj


def accept(obj: object) -> Touchpoint:
    result = parse_object(obj, 1)
    assert isinstance(result, Touchpoint), result
    return result


def reject(obj: object) -> Rejection:
    result = parse_object(obj, 1)
    assert isinstance(result, Rejection), result
    # validate() reports the very same problem as an EngageError
    with pytest.raises(IngestError) as info:
        validate(obj)
    assert isinstance(info.value, EngageError)
    assert (info.value.field, info.value.reason) == (result.field, result.reason)
    return result


def props(type_: str, **changes: Any) -> dict[str, Any]:
    out = dict(REQUIRED_EXAMPLES[type_])
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


_DROP = object()


# ---------------------------------------------------------------- the contract tables


def test_model_matches_the_contract_tables() -> None:
    assert set(EVENT_TYPES) == set(CONTRACT_PROPERTIES)
    for type_, (required, optional, default_channel) in EVENT_TYPES.items():
        assert (set(required), set(optional)) == tuple(
            set(names) for names in CONTRACT_PROPERTIES[type_]
        ), type_
        assert default_channel == DEFAULT_CHANNELS[type_], type_
        assert default_channel in CHANNELS


@pytest.mark.parametrize("type_", sorted(REQUIRED_EXAMPLES))
def test_minimal_event_of_every_type_is_accepted(type_: str) -> None:
    tp = accept(ev(type_))
    assert tp.type == type_
    assert tp.event_id == "evt-1"
    assert tp.customer_id == "cust-1"
    assert tp.occurred_at == utc_micros(2024, 3, 10, 10)
    assert tp.source is None
    assert tp.extra == {}


@given(touchpoints())
def test_strategy_touchpoints_are_exactly_what_ingest_produces(tp: Touchpoint) -> None:
    line = orjson.dumps(to_ingest_json(tp)).decode()
    assert parse_line(line, 1) == tp


# ---------------------------------------------------------------- not an event at all


@pytest.mark.parametrize("line", ["", "{", "not json", '{"a": 1,}', "{'a': 1}", '{"a": NaN}'])
def test_not_json(line: str) -> None:
    result = parse_line(line, 3)
    assert isinstance(result, Rejection)
    assert result.field == "(line)"
    assert result.reason.startswith("not valid JSON")
    assert result.raw == line
    assert result.line_no == 3
    assert result.event_id is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ([], "array"),
        ([{"event_id": "e"}], "array"),
        ("x", "string"),
        (42, "number"),
        (1.5, "number"),
        (None, "null"),
        (True, "boolean"),
    ],
)
def test_not_an_object(value: object, kind: str) -> None:
    r = reject(value)
    assert r.field == "(event)"
    assert "JSON object" in r.reason
    assert kind in r.reason


def test_not_an_object_via_parse_line_keeps_raw() -> None:
    r = parse_line("[1, 2]", 9)
    assert isinstance(r, Rejection)
    assert (r.field, r.line_no, r.raw) == ("(event)", 9, "[1, 2]")


# ---------------------------------------------------------------- the envelope


@pytest.mark.parametrize("name", ENVELOPE_REQUIRED)
def test_missing_required_envelope_field(name: str) -> None:
    obj = ev()
    del obj[name]
    r = reject(obj)
    assert r.field == name
    assert "missing" in r.reason


@pytest.mark.parametrize("name", ENVELOPE_REQUIRED)
def test_null_required_envelope_field_counts_as_missing(name: str) -> None:
    r = reject(with_field(name, None))
    assert r.field == name
    assert "missing" in r.reason


@pytest.mark.parametrize("name", ["event_id", "customer_id"])
def test_id_boundaries(name: str) -> None:
    assert getattr(accept(with_field(name, "x")), name) == "x"
    assert getattr(accept(with_field(name, "é" * 128)), name) == "é" * 128
    too_long = reject(with_field(name, "x" * 129))
    assert too_long.field == name
    assert "128" in too_long.reason and "129" in too_long.reason
    empty = reject(with_field(name, ""))
    assert empty.field == name
    assert "1 to 128" in empty.reason and "got 0" in empty.reason


@pytest.mark.parametrize("name", ["event_id", "customer_id", "type", "source", "channel"])
@pytest.mark.parametrize(
    ("value", "kind"), [(7, "number"), ([], "array"), ({}, "object"), (False, "boolean")]
)
def test_envelope_strings_must_be_strings(name: str, value: object, kind: str) -> None:
    r = reject(with_field(name, value))
    assert r.field == name
    assert "string" in r.reason
    assert kind in r.reason


def test_rejection_keeps_event_id_when_it_is_a_string() -> None:
    r = reject(ev(type="bogus"))
    assert r.event_id == "evt-1"
    assert reject(ev(event_id=5)).event_id is None


def test_unknown_type_lists_the_known_ones() -> None:
    r = reject(ev(type="purchased"))
    assert r.field == "type"
    assert "'purchased'" in r.reason
    for type_ in CONTRACT_PROPERTIES:
        assert type_ in r.reason


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-03-10 25:00:00Z",
        "2024-03-10T10:00:00+25:00",
        "10/03/2024 10:00 UTC",
    ],
)
def test_bad_timestamp(text: str) -> None:
    r = reject(ev(occurred_at=text))
    assert r.field == "occurred_at"
    assert repr(text) in r.reason
    assert "ISO 8601" in r.reason


def test_empty_and_non_string_timestamp() -> None:
    empty = reject(ev(occurred_at=""))
    assert empty.field == "occurred_at"
    assert "ISO 8601" in empty.reason
    number = reject(ev(occurred_at=1710064800))
    assert number.field == "occurred_at"
    assert "ISO 8601" in number.reason and "number" in number.reason


@pytest.mark.parametrize("text", ["2024-03-10T10:00:00", "2024-03-10", "2024-03-10T10:00:00.5"])
def test_timestamp_without_zone(text: str) -> None:
    r = reject(ev(occurred_at=text))
    assert r.field == "occurred_at"
    assert "time zone" in r.reason
    assert "'Z'" in r.reason and "offset" in r.reason  # says how to fix it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-10T10:00:00Z", utc_micros(2024, 3, 10, 10)),
        ("2024-03-10T10:00:00+00:00", utc_micros(2024, 3, 10, 10)),
        ("2024-03-10T12:00:00+02:00", utc_micros(2024, 3, 10, 10)),
        ("2024-03-10T04:30:00-05:30", utc_micros(2024, 3, 10, 10)),
        ("2024-03-10T10:00:00.123456Z", utc_micros(2024, 3, 10, 10, us=123_456)),
        ("2024-03-10T10:00:00.5+01:00", utc_micros(2024, 3, 10, 9, us=500_000)),
        ("2024-01-01T00:30:00+01:00", utc_micros(2023, 12, 31, 23, 30)),  # crosses the year
        ("1970-01-01T01:00:00+01:00", 0),  # the floor itself (events.limits.EARLIEST)
    ],
)
def test_zoned_timestamps_are_stored_as_utc_micros(text: str, expected: int) -> None:
    tp = accept(ev(occurred_at=text))
    assert tp.occurred_at == expected
    assert format_iso(tp.occurred_at).endswith("Z")


@pytest.mark.parametrize("text", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_timestamp_outside_the_utc_range_is_rejected(text: str) -> None:
    result = parse_object(ev(occurred_at=text), 1)
    if isinstance(result, Touchpoint):
        format_iso(result.occurred_at)  # raises OverflowError today
    assert isinstance(result, Rejection)
    assert result.field == "occurred_at"


# ---------------------------------------------------------------- channel and source


def test_unknown_channel_lists_the_known_ones() -> None:
    r = reject(ev(channel="fax"))
    assert r.field == "channel"
    assert "'fax'" in r.reason
    for channel in CHANNELS:
        assert channel in r.reason


@pytest.mark.parametrize("type_", sorted(DEFAULT_CHANNELS))
def test_channel_defaults_by_type(type_: str) -> None:
    assert accept(ev(type_)).channel == DEFAULT_CHANNELS[type_]
    assert accept(ev(type_, channel=None)).channel == DEFAULT_CHANNELS[type_]


@pytest.mark.parametrize("channel", CHANNELS)
def test_explicit_channel_wins(channel: str) -> None:
    assert accept(ev("purchase", channel=channel)).channel == channel


def test_source_is_kept() -> None:
    assert accept(ev(source="shopify")).source == "shopify"


# ---------------------------------------------------------------- properties


def test_properties_must_be_an_object() -> None:
    r = reject(ev(properties=["order_id", "o-1"]))
    assert r.field == "properties"
    assert "object" in r.reason and "array" in r.reason


def test_absent_properties_are_empty_for_types_without_required_ones() -> None:
    obj = ev("identify")
    del obj["properties"]
    tp = accept(obj)
    assert tp.properties == {} and tp.extra == {}


@pytest.mark.parametrize(("type_", "name"), REQUIRED_PAIRS)
def test_missing_required_property(type_: str, name: str) -> None:
    r = reject(ev(type_, props(type_, **{name: _DROP})))
    assert r.field == f"properties.{name}"
    assert "missing" in r.reason
    assert type_ in r.reason


@pytest.mark.parametrize(("type_", "name"), REQUIRED_PAIRS)
def test_null_required_property_counts_as_missing(type_: str, name: str) -> None:
    r = reject(ev(type_, props(type_, **{name: None})))
    assert r.field == f"properties.{name}"
    assert "missing" in r.reason


def test_required_properties_are_missing_when_properties_is_absent() -> None:
    obj = ev("purchase")
    del obj["properties"]
    assert reject(obj).field == "properties.order_id"


@pytest.mark.parametrize(
    ("type_", "name"),
    [
        ("identify", "email"),
        ("identify", "name"),
        ("email_sent", "campaign_id"),
        ("email_clicked", "url"),
        ("email_opened", "message_id"),
        ("subscribed", "list"),
        ("web_visit", "url"),
        ("web_visit", "referrer"),
        ("purchase", "order_id"),
        ("purchase", "currency"),
        ("refund", "order_id"),
        ("chat_started", "conversation_id"),
        ("support_case_opened", "case_id"),
        ("support_case_closed", "resolution"),
        ("survey_response", "survey"),
        ("survey_response", "comment"),
    ],
)
def test_string_properties_must_be_strings(type_: str, name: str) -> None:
    r = reject(ev(type_, props(type_, **{name: 12})))
    assert r.field == f"properties.{name}"
    assert "string" in r.reason and "number" in r.reason


@pytest.mark.parametrize(("value", "kind"), [("yes", "string"), (1, "number"), ({}, "object")])
def test_resolved_must_be_a_bool(value: object, kind: str) -> None:
    r = reject(ev("chat_ended", props("chat_ended", resolved=value)))
    assert r.field == "properties.resolved"
    assert "true or false" in r.reason and kind in r.reason
    assert accept(ev("chat_ended", props("chat_ended", resolved=False))).properties == {
        "conversation_id": "cv-1",
        "resolved": False,
    }


@pytest.mark.parametrize(("value", "kind"), [(["a"], "array"), ("gold", "string"), (3, "number")])
def test_traits_must_be_an_object(value: object, kind: str) -> None:
    r = reject(ev("identify", {"traits": value}))
    assert r.field == "properties.traits"
    assert "object" in r.reason and kind in r.reason


def test_traits_become_a_string_map() -> None:
    traits = {"tier": "gold", "visits": 3, "vip": True, "tags": ["a", 1], "x": None, "f": 1.5}
    tp = accept(ev("identify", {"email": "a@b.test", "traits": traits}))
    assert tp.properties == {
        "email": "a@b.test",
        "traits": {
            "tier": "gold",
            "visits": "3",
            "vip": "true",
            "tags": '["a",1]',
            "x": "null",
            "f": "1.5",
        },
    }


@pytest.mark.parametrize(("value", "kind"), [({"sku": "A"}, "object"), ("A,B", "string")])
def test_items_must_be_an_array(value: object, kind: str) -> None:
    r = reject(ev("purchase", props("purchase", items=value)))
    assert r.field == "properties.items"
    assert "array" in r.reason and kind in r.reason


def test_items_are_kept_as_sent() -> None:
    items = [{"sku": "A", "qty": 2, "price": 9.5}, "free-gift", 3, None]
    assert accept(ev("purchase", props("purchase", items=items))).properties["items"] == items


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize("type_", ["purchase", "refund"])
@pytest.mark.parametrize("value", [-0.01, -1, -1e9])
def test_negative_amount(type_: str, value: float) -> None:
    r = reject(ev(type_, props(type_, amount=value)))
    assert r.field == "properties.amount"
    assert "0 or more" in r.reason and str(value) in r.reason


@pytest.mark.parametrize("type_", ["purchase", "refund"])
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("10.00", "string"),
        (True, "boolean"),
        (False, "boolean"),
        ([10], "array"),
        ({"value": 10}, "object"),
    ],
)
def test_amount_must_be_a_number(type_: str, value: object, kind: str) -> None:
    r = reject(ev(type_, props(type_, amount=value)))
    assert r.field == "properties.amount"
    assert "number" in r.reason and kind in r.reason


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_amount_cannot_get_through_json(token: str) -> None:
    line = (
        '{"event_id":"e","customer_id":"c","type":"purchase",'
        '"occurred_at":"2024-01-01T00:00:00Z","properties":{"order_id":"o","amount":' + token + "}}"
    )
    r = parse_line(line, 1)
    assert isinstance(r, Rejection)
    assert r.field == "(line)"
    assert "not valid JSON" in r.reason


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_amount_from_a_lenient_decoder_is_rejected(value: float) -> None:
    r = reject(ev("purchase", props("purchase", amount=value)))
    assert r.field == "properties.amount"


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (10, 10.0), (19.99, 19.99)])
def test_amount_is_normalised_to_float(value: float, expected: float) -> None:
    tp = accept(ev("purchase", props("purchase", amount=value)))
    assert type(tp.properties["amount"]) is float
    assert tp.properties["amount"] == expected


# ---------------------------------------------------------------- currency


def test_currency_defaults_to_usd() -> None:
    assert accept(ev("purchase")).properties == {
        "order_id": "o-1",
        "amount": 10.0,
        "currency": "USD",
    }


@pytest.mark.parametrize(("value", "expected"), [("eur", "EUR"), ("Gbp", "GBP"), ("JPY", "JPY")])
def test_currency_is_upper_cased(value: str, expected: str) -> None:
    assert (
        accept(ev("purchase", props("purchase", currency=value))).properties["currency"] == expected
    )


@pytest.mark.parametrize("value", ["", "EURO", "E1R", "US", "U D"])
def test_currency_must_be_three_letters(value: str) -> None:
    r = reject(ev("purchase", props("purchase", currency=value)))
    assert r.field == "properties.currency"
    assert "3-letter" in r.reason and repr(value) in r.reason


@pytest.mark.parametrize("value", ["éur", "ßab", "usδ"])
def test_currency_must_be_ascii_letters(value: str) -> None:
    r = parse_object(ev("purchase", props("purchase", currency=value)), 1)
    assert isinstance(r, Rejection)
    assert r.field == "properties.currency"


# ---------------------------------------------------------------- surveys


@pytest.mark.parametrize(
    ("survey", "score"), [("nps", -1), ("nps", 11), ("nps", 100), ("csat", 0), ("csat", 6)]
)
def test_survey_score_out_of_range(survey: str, score: int) -> None:
    r = reject(ev("survey_response", {"survey": survey, "score": score}))
    assert r.field == "properties.score"
    low, high = {"nps": (0, 10), "csat": (1, 5)}[survey]
    assert f"{low} to {high}" in r.reason
    assert survey in r.reason and str(score) in r.reason


@pytest.mark.parametrize(
    ("survey", "score"), [("nps", 0), ("nps", 10), ("csat", 1), ("csat", 5), ("nps", 7.0)]
)
def test_survey_score_in_range_is_an_int(survey: str, score: float) -> None:
    tp = accept(ev("survey_response", {"survey": survey, "score": score, "comment": "ok"}))
    assert tp.properties == {"survey": survey, "score": int(score), "comment": "ok"}
    assert type(tp.properties["score"]) is int


@pytest.mark.parametrize("score", [7.5, 0.1, 4.999])
def test_non_integer_score(score: float) -> None:
    r = reject(ev("survey_response", {"survey": "nps", "score": score}))
    assert r.field == "properties.score"
    assert "whole number" in r.reason and str(score) in r.reason


@pytest.mark.parametrize(("score", "kind"), [("9", "string"), (True, "boolean"), ([9], "array")])
def test_score_must_be_a_number(score: object, kind: str) -> None:
    r = reject(ev("survey_response", {"survey": "nps", "score": score}))
    assert r.field == "properties.score"
    assert "number" in r.reason and kind in r.reason


@pytest.mark.parametrize("survey", ["ces", "NPS", ""])
def test_unknown_survey(survey: str) -> None:
    r = reject(ev("survey_response", {"survey": survey, "score": 3}))
    assert r.field == "properties.survey"
    assert "'nps'" in r.reason and "'csat'" in r.reason and repr(survey) in r.reason


# ---------------------------------------------------------------- unknown extra properties


def test_unknown_properties_are_kept_as_a_string_map() -> None:
    sent = {
        "order_id": "o-1",
        "amount": 5,
        "coupon": "SPRING",
        "n": 3,
        "rate": 0.5,
        "gift": True,
        "nested": {"a": [1, "x"]},
        "list": ["a"],
        "ünï": "ok",
    }
    tp = accept(ev("purchase", sent))
    assert tp.properties == {"order_id": "o-1", "amount": 5.0, "currency": "USD"}
    assert tp.extra == {
        "coupon": "SPRING",
        "n": "3",
        "rate": "0.5",
        "gift": "true",
        "nested": '{"a":[1,"x"]}',
        "list": '["a"]',  # a property of other types is unknown here
        "ünï": "ok",
    }


def test_unknown_top_level_fields_do_not_leak_into_properties() -> None:
    tp = accept(ev("web_visit", {"url": "u"}, utm_source="news"))
    assert tp.properties == {"url": "u"}
    assert tp.extra == {}


# ---------------------------------------------------------------- robustness and messages


@given(st.text())
def test_parse_line_never_raises_on_arbitrary_text(line: str) -> None:
    result = parse_line(line, 1)
    assert isinstance(result, Touchpoint | Rejection)
    if isinstance(result, Rejection):
        assert result.raw == line
        assert result.field and result.reason


_FIELD_VALUES = st.one_of(
    json_values,
    st.sampled_from(sorted(CONTRACT_PROPERTIES)),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+05:00", "2024-01-01"]),
    st.sampled_from(["nps", "csat", "USD", "eur", "web", "fax"]),
)
_PROPERTY_NAMES = sorted(
    {n for required, optional in CONTRACT_PROPERTIES.values() for n in (*required, *optional)}
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["event_id", "customer_id", "type", "occurred_at", "channel", "source", "properties"]
        ),
        _FIELD_VALUES,
    ),
    st.dictionaries(st.sampled_from(_PROPERTY_NAMES) | st.text(max_size=3), _FIELD_VALUES),
)
def test_parse_line_never_raises_on_event_shaped_json(
    envelope: dict[str, Any], properties: dict[str, Any]
) -> None:
    obj = {**envelope}
    if "properties" not in obj:
        obj["properties"] = properties
    line = orjson.dumps(obj).decode()
    result = parse_line(line, 1)
    assert isinstance(result, Touchpoint | Rejection)
    if isinstance(result, Rejection):
        assert result.field
        assert result.reason


def test_rejection_message_names_line_field_and_reason() -> None:
    line = orjson.dumps(ev(properties={"order_id": "o-1", "amount": -3})).decode()
    r = parse_line(line, 7)
    assert isinstance(r, Rejection)
    assert r.message() == "line 7: properties.amount: must be 0 or more, got -3"
    assert r.message("orders.jsonl") == (
        "orders.jsonl:line 7: properties.amount: must be 0 or more, got -3"
    )
    assert r.event_id == "evt-1"
    assert r.raw == line


def test_rejection_message_without_a_line_number() -> None:
    r = parse_object(ev(channel="fax"), None)
    assert isinstance(r, Rejection)
    assert r.message().startswith("event: channel: unknown channel 'fax'")
    assert orjson.loads(r.raw) == ev(channel="fax")  # raw text kept for the DLQ


def test_a_nul_in_an_id_is_rejected_not_a_storage_crash() -> None:
    line = (
        '{"event_id": "a\\u0000b", "customer_id": "c", "type": "identify",'
        ' "occurred_at": "2026-01-01T00:00:00Z"}'
    )
    rejected = parse_line(line, 3)
    assert isinstance(rejected, Rejection)
    assert (rejected.field, rejected.reason) == (
        "event_id",
        "must not contain NUL (\\u0000) characters",
    )
