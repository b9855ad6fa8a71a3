"""The Avro codec: exact round trips, single-object framing, poison isolation.

The codec sits between every adapter and the pure core, so a lossy round trip
would silently corrupt every profile; these tests compare whole values, not
samples of fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.errors import EngageError
from events.codec import (
    HEADER_SIZE,
    MARKER,
    CodecError,
    TouchpointCodec,
    TriggerCodec,
    fingerprint,
    load_current_schema,
    write_single_object,
)
from events.model import EVENT_TYPES, Touchpoint, TriggerEvent

T0 = 1_700_000_000_123_456

FULL_PROPERTIES: dict[str, dict[str, Any]] = {
    "identify": {"email": "ann@example.com", "name": "Ann", "traits": {"tier": "gold", "x": ""}},
    "email_sent": {"campaign_id": "c-1", "message_id": "m-1"},
    "email_opened": {"campaign_id": "c-1", "message_id": "m-1"},
    "email_clicked": {"campaign_id": "c-1", "message_id": "m-1", "url": "https://x.test/a"},
    "unsubscribed": {"list": "news"},
    "subscribed": {"list": "news"},
    "web_visit": {"url": "https://x.test/", "referrer": "https://search.test/"},
    "purchase": {
        "order_id": "o-1",
        "amount": 129.95,
        "currency": "EUR",
        "items": [{"sku": "A", "qty": 2, "price": 9.5, "tags": ["x", None, True]}, 3, "free"],
    },
    "refund": {"order_id": "o-1", "amount": 0.0},
    "chat_started": {"conversation_id": "cv-1"},
    "chat_ended": {"conversation_id": "cv-1", "resolved": False},
    "support_case_opened": {"case_id": "k-1"},
    "support_case_closed": {"case_id": "k-1", "resolution": "fixed"},
    "survey_response": {"survey": "nps", "score": 0, "comment": "meh"},
    "custom": {"name": "Product Viewed"},
}


def _required_only(type_: str) -> dict[str, Any]:
    required = EVENT_TYPES[type_][0]
    return {k: v for k, v in FULL_PROPERTIES[type_].items() if k in required}


def _tp(type_: str, properties: dict[str, Any], **overrides: Any) -> Touchpoint:
    fields: dict[str, Any] = {
        "event_id": f"evt-{type_}",
        "customer_id": "cust-1",
        "type": type_,
        "occurred_at": T0,
        "channel": EVENT_TYPES[type_][2],
        "source": "shop",
        "properties": properties,
        "extra": {"utm": "spring"},
    }
    fields.update(overrides)
    return Touchpoint(**fields)


_CODEC = TouchpointCodec()
_TRIGGERS = TriggerCodec()


@pytest.fixture
def codec() -> TouchpointCodec:
    return _CODEC


@pytest.fixture
def triggers() -> TriggerCodec:
    return _TRIGGERS


def test_every_type_has_full_example() -> None:
    assert set(FULL_PROPERTIES) == set(EVENT_TYPES)
    for type_, (required, optional, _) in EVENT_TYPES.items():
        assert set(FULL_PROPERTIES[type_]) == set(required) | set(optional), type_


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_round_trip_all_properties(codec: TouchpointCodec, type_: str) -> None:
    tp = _tp(type_, FULL_PROPERTIES[type_])
    decoded = codec.decode(codec.encode(tp))
    assert decoded == tp
    assert decoded.properties == FULL_PROPERTIES[type_]
    for key, value in tp.properties.items():
        assert type(decoded.properties[key]) is type(value), key


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_round_trip_required_only_omits_absent_keys(codec: TouchpointCodec, type_: str) -> None:
    tp = _tp(type_, _required_only(type_), source=None, extra={})
    decoded = codec.decode(codec.encode(tp))
    assert decoded == tp
    assert set(decoded.properties) == set(EVENT_TYPES[type_][0])
    assert decoded.source is None
    assert decoded.extra == {}


def test_shared_payload_branch_keeps_the_type(codec: TouchpointCodec) -> None:
    sent = _tp("email_sent", {"campaign_id": "c"})
    opened = _tp("email_opened", {"campaign_id": "c"})
    unsub = _tp("unsubscribed", {})
    sub = _tp("subscribed", {"list": "l"})
    decoded = codec.decode_many(codec.encode_many([sent, opened, unsub, sub]))
    assert decoded == [sent, opened, unsub, sub]
    assert [d.type for d in decoded if isinstance(d, Touchpoint)] == [
        "email_sent",
        "email_opened",
        "unsubscribed",
        "subscribed",
    ]


def test_unicode_everywhere(codec: TouchpointCodec) -> None:
    tp = Touchpoint(
        event_id="évt-😀-東京",
        customer_id="kunde-Zoë-ß",
        type="identify",
        occurred_at=T0,
        channel="other",
        source="système",
        properties={"name": "Zoë 🌸 Ñandú", "traits": {"ключ": "значение", "": "空"}},
        extra={"note": "e\u0301 combining", "🔑": "\u2028line sep"},
    )
    assert codec.decode(codec.encode(tp)) == tp
    assert codec.decode_many([codec.encode(tp)] * 3) == [tp, tp, tp]


def test_purchase_items_are_exact_json(codec: TouchpointCodec) -> None:
    items: list[Any] = [
        {"sku": "Ä", "n": 2**80, "neg": -(2**70), "f": 0.1, "e": 1e300, "z": -0.0},
        [[], {}, None, False],
        "\ud7ff text",
    ]
    tp = _tp("purchase", {"order_id": "o", "amount": 5.0, "currency": "USD", "items": items})
    decoded = codec.decode(codec.encode(tp))
    assert decoded == tp
    assert decoded.properties["items"][0]["n"] == 2**80
    assert isinstance(decoded.properties["items"][0]["n"], int)
    assert math.copysign(1, decoded.properties["items"][0]["z"]) == -1


def test_times_keep_microseconds_and_extremes(codec: TouchpointCodec) -> None:
    for micros in (0, -1, T0, 2**63 - 1, -(2**63)):
        tp = _tp("chat_started", {"conversation_id": "c"}, occurred_at=micros)
        assert codec.decode(codec.encode(tp)).occurred_at == micros


def test_unknown_type_without_properties_round_trips(codec: TouchpointCodec) -> None:
    tp = Touchpoint("e", "c", "app_installed", T0, "app", None, {}, {"os": "ios"})
    assert codec.decode(codec.encode(tp)) == tp


def test_single_object_header(codec: TouchpointCodec) -> None:
    data = codec.encode(_tp("refund", {"order_id": "o", "amount": 1.0}))
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == fingerprint(load_current_schema("engage.Touchpoint"))
    assert data[2:HEADER_SIZE] in codec.fingerprints


def test_fingerprint_is_the_specs_crc64_avro() -> None:
    # Vector from the Avro specification's test suite: "int" -> 0x7275d51a3f395c8f,
    # written little-endian in the single-object header.
    assert fingerprint({"type": "int"}) == bytes.fromhex("8f5c393f1ad57572")


def test_encode_many_matches_encode(codec: TouchpointCodec) -> None:
    tps = [_tp(t, FULL_PROPERTIES[t], event_id=f"e{i}") for i, t in enumerate(EVENT_TYPES)]
    assert codec.encode_many(tps) == [codec.encode(tp) for tp in tps]
    assert codec.encode_many(iter(tps)) == [codec.encode(tp) for tp in tps]


@pytest.mark.parametrize(
    ("type_", "properties", "reason"),
    [
        ("refund", {"order_id": "o"}, "amount"),
        ("refund", {"order_id": "o", "amount": 1.0, "note": "x"}, "note"),
        ("survey_response", {"survey": "nps", "score": "ten"}, "score"),
        ("chat_started", {"conversation_id": 7}, "conversation_id"),
        ("app_installed", {"os": "ios"}, "no payload schema"),
        ("purchase", {"order_id": "o", "amount": 1.0, "items": [float("nan")]}, "JSON"),
    ],
)
def test_unencodable_touchpoints_raise_codec_error(
    codec: TouchpointCodec, type_: str, properties: dict[str, Any], reason: str
) -> None:
    tp = Touchpoint("evt-bad", "c", type_, T0, "web", None, properties, {})
    with pytest.raises(CodecError, match=reason) as info:
        codec.encode(tp)
    assert isinstance(info.value, EngageError)
    with pytest.raises(CodecError, match="evt-bad"):
        codec.encode_many([tp])


# --------------------------------------------------------------------------- poison


def _good(codec: TouchpointCodec, n: int) -> tuple[list[Touchpoint], list[bytes]]:
    types = sorted(EVENT_TYPES)
    tps = [
        _tp(types[i % len(types)], FULL_PROPERTIES[types[i % len(types)]], event_id=f"e-{i}")
        for i in range(n)
    ]
    return tps, codec.encode_many(tps)


def _poisons(codec: TouchpointCodec) -> dict[str, tuple[bytes, str]]:
    _, (a, b) = _good(codec, 2)
    return {
        "empty": (b"", "shorter than"),
        "short": (b"\xc3\x01\x00", "shorter than"),
        "marker": (b"\x00\x01" + a[2:], "marker 0001"),
        "json": (b'{"event_id": "x", "type": "purchase"}', "marker 7b22"),
        "fingerprint": (MARKER + bytes.fromhex("0011223344556677") + a[10:], "0011223344556677"),
        "truncated": (a[:-5], "truncated"),
        "header only": (a[:HEADER_SIZE], "truncated"),
        "last byte gone": (a[:-1], "truncated"),
        "trailing": (a + b"\x00", "trailing"),
        "doubled": (a + b[HEADER_SIZE:], "trailing"),
        "bad union": (a[:HEADER_SIZE] + b"\x02a\x02c\x02t\x00\x02w\x7f", "corrupt"),
    }


@pytest.mark.parametrize("name", sorted(_poisons(_CODEC)))
def test_decode_raises_codec_error_with_reason(codec: TouchpointCodec, name: str) -> None:
    payload, reason = _poisons(codec)[name]
    with pytest.raises(CodecError, match=reason):
        codec.decode(payload)


def test_decode_rejects_non_bytes(codec: TouchpointCodec) -> None:
    with pytest.raises(CodecError, match="must be bytes, not NoneType"):
        codec.decode(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_poison_in_batch_spares_neighbours(codec: TouchpointCodec, position: str) -> None:
    tps, payloads = _good(codec, 40)
    poisons = _poisons(codec)
    batch: list[Any] = list(payloads)
    expected: list[Touchpoint | str] = list(tps)
    slot = {"first": 0, "middle": 20, "last": 40}[position]
    for offset, (payload, reason) in enumerate(poisons.values()):
        batch.insert(slot + offset, payload)
        expected.insert(slot + offset, reason)
    batch.insert(slot, None)  # a Kafka tombstone
    expected.insert(slot, "must be bytes")
    results = codec.decode_many(batch)
    assert len(results) == len(expected)
    for got, want in zip(results, expected, strict=True):
        if isinstance(want, str):
            assert isinstance(got, CodecError)
            assert want in str(got)
        else:
            assert got == want


def test_batch_detects_bodies_that_swallow_a_neighbour(codec: TouchpointCodec) -> None:
    """Joined bodies still parse when one body holds two records and the next none.

    Only the boundary checks of the batched read tell the records apart from
    their payloads here; without them the second slot would silently get the
    first payload's second record.
    """
    tps, (a, b, c) = _good(codec, 3)
    doubled = a + b[HEADER_SIZE:]
    header_only = c[:HEADER_SIZE]
    results = codec.decode_many([doubled, header_only])
    assert all(isinstance(r, CodecError) for r in results), results
    assert "trailing" in str(results[0])
    assert "truncated" in str(results[1])
    results = codec.decode_many([doubled, c])
    assert isinstance(results[0], CodecError)
    assert results[1] == tps[2]
    # b's body split over the end of a and a payload of its own: joined, the
    # bytes are exactly a, b, c, and only the per-record check notices.
    cut = HEADER_SIZE + 5
    results = codec.decode_many([a + b[HEADER_SIZE:cut], b[:HEADER_SIZE] + b[cut:], c])
    assert isinstance(results[0], CodecError)
    assert isinstance(results[1], CodecError)
    assert results[2] == tps[2]


def test_decode_many_all_good_and_empty(codec: TouchpointCodec) -> None:
    tps, payloads = _good(codec, 100)
    assert codec.decode_many(payloads) == tps
    assert codec.decode_many([]) == []
    assert codec.decode_many(payloads[:1]) == tps[:1]


def test_bad_items_json_is_a_codec_error(codec: TouchpointCodec) -> None:
    schema = load_current_schema("engage.Touchpoint")
    record = {
        "event_id": "e-json",
        "customer_id": "c",
        "type": "purchase",
        "occurred_at": T0,
        "channel": "web",
        "source": None,
        "properties": (
            "engage.PurchaseProperties",
            {"order_id": "o", "amount": 1.0, "currency": None, "items": "[1,"},
        ),
        "extra": {},
    }
    bad = write_single_object(schema, record)
    _, good = _good(codec, 3)
    results = codec.decode_many([good[0], bad, good[1], good[2]])
    assert isinstance(results[1], CodecError)
    assert "items is not JSON" in str(results[1])
    assert all(isinstance(r, Touchpoint) for i, r in enumerate(results) if i != 1)


# --------------------------------------------------------------------------- properties

_text = st.text(max_size=20)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)
_amount = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
_int32 = st.integers(-(2**31), 2**31 - 1)

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "traits": st.dictionaries(_text, _text, max_size=4),
    "amount": _amount,
    "items": st.lists(_json, max_size=4),
    "resolved": st.booleans(),
    "score": _int32,
    "survey": st.sampled_from(["nps", "csat"]),
    "currency": st.sampled_from(["USD", "EUR", "JPY"]),
}


def _properties(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    required, optional, _ = EVENT_TYPES[type_]
    return st.fixed_dictionaries(
        {key: _VALUES.get(key, _text) for key in required},
        optional={key: _VALUES.get(key, _text) for key in optional},
    )


@st.composite
def touchpoints(draw: st.DrawFn, types: Sequence[str] = tuple(sorted(EVENT_TYPES))) -> Touchpoint:
    type_ = draw(st.sampled_from(types))
    return Touchpoint(
        event_id=draw(st.text(min_size=1, max_size=130)),
        customer_id=draw(st.text(min_size=1, max_size=128)),
        type=type_,
        occurred_at=draw(st.integers(-(2**63), 2**63 - 1)),
        channel=draw(st.sampled_from(["email", "web", "app", "store", "chat", "other"])),
        source=draw(st.none() | _text),
        properties=draw(_properties(type_)),
        extra=draw(st.dictionaries(_text, _text, max_size=3)),
        anonymous_id=draw(st.none() | _text),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(touchpoints())
def test_property_decode_inverts_encode(tp: Touchpoint) -> None:
    codec = _CODEC
    assert codec.decode(codec.encode(tp)) == tp


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(touchpoints(), min_size=0, max_size=30))
def test_property_batch_decode_inverts_encode(tps: list[Touchpoint]) -> None:
    codec = _CODEC
    assert codec.decode_many(codec.encode_many(tps)) == tps


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(touchpoints(), min_size=2, max_size=12),
    st.data(),
)
def test_property_damaged_payload_never_corrupts_neighbours(
    tps: list[Touchpoint], data: st.DataObject
) -> None:
    """Truncate, pad or flip a byte of one body: the others must still be exact.

    This guards the batched read, which joins bodies and so has to prove every
    record boundary afterwards.
    """
    codec = _CODEC
    payloads = codec.encode_many(tps)
    victim = data.draw(st.integers(0, len(payloads) - 1))
    body = payloads[victim]
    damage = data.draw(st.sampled_from(["truncate", "pad", "flip"]))
    if damage == "truncate":
        cut = data.draw(st.integers(HEADER_SIZE, len(body) - 1))
        payloads[victim] = body[:cut]
    elif damage == "pad":
        payloads[victim] = body + data.draw(st.binary(min_size=1, max_size=8))
    else:
        at = data.draw(st.integers(HEADER_SIZE, len(body) - 1))
        flipped = body[at] ^ data.draw(st.integers(1, 255))
        payloads[victim] = body[:at] + bytes([flipped]) + body[at + 1 :]
    results = codec.decode_many(payloads)
    for index, (got, want) in enumerate(zip(results, tps, strict=True)):
        if index == victim:
            # A flipped byte inside a string can still decode (Avro has no
            # checksum); a length change never can.
            assert isinstance(got, CodecError | Touchpoint)
            if damage != "flip":
                assert isinstance(got, CodecError)
        else:
            assert got == want


# --------------------------------------------------------------------------- triggers


def _trigger(**overrides: Any) -> TriggerEvent:
    fields: dict[str, Any] = {
        "trigger_id": "trg-1",
        "rule_id": "first-purchase-thank-you",
        "rule_version": 3,
        "kind": "thank_you",
        "customer_id": "cust-Zoë",
        "fired_at": T0,
        "caused_by": ("e-1", "e-2"),
        "details": {"amount": 12.5, "order_id": "o-1", "nested": {"a": [1, None, "ü"]}},
    }
    fields.update(overrides)
    return TriggerEvent(**fields)


def test_trigger_round_trip(triggers: TriggerCodec) -> None:
    for trigger in (_trigger(), _trigger(caused_by=(), details={}), _trigger(rule_version=-1)):
        decoded = triggers.decode(triggers.encode(trigger))
        assert decoded == trigger
        assert isinstance(decoded.caused_by, tuple)


def test_trigger_decode_many_with_poison(triggers: TriggerCodec) -> None:
    items = [_trigger(trigger_id=f"t-{i}", fired_at=T0 + i) for i in range(10)]
    payloads: list[bytes] = triggers.encode_many(items)
    payloads.insert(5, payloads[5][:-2])
    results = triggers.decode_many(payloads)
    assert isinstance(results[5], CodecError)
    assert results[:5] + results[6:] == items


def test_trigger_details_must_be_an_object(triggers: TriggerCodec) -> None:
    record = {
        "trigger_id": "t",
        "rule_id": "r",
        "rule_version": 1,
        "kind": "k",
        "customer_id": "c",
        "fired_at": T0,
        "caused_by": [],
        "details": "[1, 2]",
    }
    payload = write_single_object(triggers.schema, record)
    with pytest.raises(CodecError, match="not a JSON object"):
        triggers.decode(payload)


def test_trigger_and_touchpoint_payloads_do_not_mix(
    codec: TouchpointCodec, triggers: TriggerCodec
) -> None:
    trigger_payload = triggers.encode(_trigger())
    touch_payload = codec.encode(_tp("refund", {"order_id": "o", "amount": 1.0}))
    with pytest.raises(CodecError, match=r"unknown engage\.Touchpoint writer schema"):
        codec.decode(trigger_payload)
    with pytest.raises(CodecError, match=r"unknown engage\.Trigger writer schema"):
        triggers.decode(touch_payload)


@settings(max_examples=100)
@given(
    st.builds(
        TriggerEvent,
        trigger_id=_text,
        rule_id=_text,
        rule_version=_int32,
        kind=_text,
        customer_id=_text,
        fired_at=st.integers(-(2**63), 2**63 - 1),
        caused_by=st.lists(_text, max_size=4).map(tuple),
        details=st.dictionaries(_text, _json, max_size=4),
    )
)
def test_property_trigger_round_trip(trigger: TriggerEvent) -> None:
    codec = _TRIGGERS
    assert codec.decode(codec.encode(trigger)) == trigger
    assert codec.decode_many([codec.encode(trigger)] * 2) == [trigger, trigger]
