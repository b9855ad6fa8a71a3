"""Old writers, new reader: every envelope version ever written must still decode.

The log is kept forever and replayed by analysts, so a schema change that
leaves one old entry unreadable breaks replay for good. These tests write data
with each history schema and read it with the current codec.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import (
    HEADER_SIZE,
    CodecError,
    TouchpointCodec,
    _as_batch_schema,
    fingerprint,
    load_current_schema,
    load_history,
    write_single_object,
)
from events.model import EVENT_TYPES, Touchpoint
from tests.unit.test_codec import _CODEC, touchpoints

T0 = 1_650_000_000_000_001

# Pinned so that changing a schema file is a deliberate act: when this test
# fails, copy the previous envelope into schemas/history/ as the next vN
# (self-contained, named types inlined), add its fingerprint to KNOWN_WRITERS,
# then update CURRENT.
CURRENT_TOUCHPOINT = "aaefbc8a31388576"
KNOWN_WRITERS = {
    "b79c7c4b032e5c0e": "engage.Touchpoint.v1.avsc",
    "0cc0171453fb1802": "engage.Touchpoint.v2.avsc",
}

V1_PROPERTIES: dict[str, tuple[str, dict[str, Any]]] = {
    "identify": ("IdentifyProperties", {"email": "a@b.test", "name": None, "traits": {"k": "v"}}),
    "email_sent": ("EmailProperties", {"campaign_id": "c", "message_id": None}),
    "email_opened": ("EmailProperties", {"campaign_id": "c", "message_id": "m"}),
    "email_clicked": (
        "EmailClickedProperties",
        {"campaign_id": "c", "message_id": "m", "url": "u"},
    ),
    "unsubscribed": ("SubscriptionProperties", {"list": None}),
    "subscribed": ("SubscriptionProperties", {"list": "news"}),
    "web_visit": ("WebVisitProperties", {"url": "https://x.test", "referrer": None}),
    "purchase": (
        "PurchaseProperties",
        {"order_id": "o", "amount": 10.5, "currency": "USD", "items": '[{"sku":"é"}]'},
    ),
    "refund": ("RefundProperties", {"order_id": "o", "amount": 2.0}),
    "chat_started": ("ChatStartedProperties", {"conversation_id": "cv"}),
    "chat_ended": ("ChatEndedProperties", {"conversation_id": "cv", "resolved": True}),
    "support_case_opened": ("SupportCaseOpenedProperties", {"case_id": "k"}),
    "support_case_closed": ("SupportCaseClosedProperties", {"case_id": "k", "resolution": None}),
    "survey_response": (
        "SurveyResponseProperties",
        {"survey": "csat", "score": 5, "comment": None},
    ),
}


V1: tuple[str, ...] = tuple(sorted(V1_PROPERTIES))
"""The types v1 and v2 knew (``custom`` came with v3)."""


def _v1_record(type_: str, index: int = 0) -> dict[str, Any]:
    branch, properties = V1_PROPERTIES[type_]
    return {
        "event_id": f"old-{type_}-{index}",
        "customer_id": "cust-ü",
        "type": type_,
        "occurred_at": T0 + index,
        "channel": EVENT_TYPES[type_][2],
        "properties": (f"engage.{branch}", properties),
    }


def _expected(record: dict[str, Any]) -> Touchpoint:
    properties = {k: v for k, v in record["properties"][1].items() if v is not None}
    if "items" in properties:
        properties["items"] = json.loads(properties["items"])
    return Touchpoint(
        event_id=record["event_id"],
        customer_id=record["customer_id"],
        type=record["type"],
        occurred_at=record["occurred_at"],
        channel=record["channel"],
        source=None,
        properties=properties,
        extra={},
    )


@pytest.fixture(scope="module")
def codec() -> TouchpointCodec:
    return TouchpointCodec()


@pytest.fixture(scope="module")
def v1() -> dict[str, Any]:
    return load_history("engage.Touchpoint")[0]


@pytest.fixture(scope="module")
def v2() -> dict[str, Any]:
    return load_history("engage.Touchpoint")[1]


def test_v2_writer_decodes_with_current_reader(codec: TouchpointCodec, v2: dict[str, Any]) -> None:
    """Every v2 record (source and extra, no anonymous_id, no custom) reads
    back with anonymous_id None, one by one and in a batch with v3 records."""
    old = [{**_v1_record(t, i), "source": "shop", "extra": {"k": "v"}} for i, t in enumerate(V1)]
    payloads = [write_single_object(v2, r) for r in old]
    expected = [dataclasses.replace(_expected(r), source="shop", extra={"k": "v"}) for r in old]
    assert [codec.decode(p) for p in payloads] == expected
    custom = Touchpoint("new", "c", "custom", T0, "other", None, {"name": "X"}, {}, "anon-1")
    assert codec.decode_many([*payloads, codec.encode(custom)]) == [*expected, custom]
    assert all(isinstance(tp, Touchpoint) and tp.anonymous_id is None for tp in expected)


def test_v1_history_schema_is_the_envelope_without_source_and_extra(v1: dict[str, Any]) -> None:
    current = load_current_schema("engage.Touchpoint")
    v1_fields = [f["name"] for f in v1["fields"]]
    current_fields = [f["name"] for f in current["fields"]]
    assert v1["name"] == current["name"] == "engage.Touchpoint"
    assert "source" not in v1_fields and "extra" not in v1_fields
    assert [f for f in current_fields if f not in v1_fields] == ["source", "extra", "anonymous_id"]
    added = {f["name"]: f for f in current["fields"] if f["name"] in ("source", "extra")}
    assert added["source"]["default"] is None
    assert added["extra"]["default"] == {}


def test_v2_is_v3_without_anonymous_id_and_the_custom_payload(v2: dict[str, Any]) -> None:
    current = load_current_schema("engage.Touchpoint")
    v2_fields = [f["name"] for f in v2["fields"]]
    assert [f["name"] for f in current["fields"]] == [*v2_fields, "anonymous_id"]
    unions = [
        next(f["type"] for f in schema["fields"] if f["name"] == "properties")
        for schema in (v2, current)
    ]
    names = [[b if isinstance(b, str) else b["name"] for b in union] for union in unions]
    assert names[1] == [*names[0], "engage.CustomProperties"]  # appended: old indexes hold


def test_history_files_are_self_contained() -> None:
    """A history file must parse alone: sibling files may change after it is frozen."""
    folder = resources.files("schemas").joinpath("history")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".avsc"))
    assert names == sorted(KNOWN_WRITERS.values())
    for name in names:
        raw = json.loads(folder.joinpath(name).read_text("utf-8"))
        text = json.dumps(raw)
        for branch, _ in V1_PROPERTIES.values():
            # each payload record is defined inline, not referenced by name only
            assert f'"name": "{branch}"' in text, (name, branch)


def test_fingerprints_are_pinned(codec: TouchpointCodec) -> None:
    current = fingerprint(load_current_schema("engage.Touchpoint")).hex()
    assert current == CURRENT_TOUCHPOINT, (
        "engage.Touchpoint changed: keep the old version in schemas/history/ "
        "and update the pins in this test"
    )
    history = {fingerprint(s).hex() for s in load_history("engage.Touchpoint")}
    assert history == set(KNOWN_WRITERS)
    assert {fp.hex() for fp in codec.fingerprints} == {current, *KNOWN_WRITERS}


@pytest.mark.parametrize("type_", sorted(V1_PROPERTIES))
def test_v1_writer_decodes_with_current_reader(
    codec: TouchpointCodec, v1: dict[str, Any], type_: str
) -> None:
    record = _v1_record(type_)
    payload = write_single_object(v1, record)
    assert payload[2:HEADER_SIZE].hex() in KNOWN_WRITERS
    decoded = codec.decode(payload)
    assert decoded == _expected(record)
    assert decoded.source is None
    assert decoded.extra == {}


def test_v1_batch_mixed_with_current(codec: TouchpointCodec, v1: dict[str, Any]) -> None:
    old = [_v1_record(t, i) for i, t in enumerate(V1)]
    new = [
        dataclasses.replace(_expected(r), event_id=f"new-{i}", source="shop", extra={"a": "b"})
        for i, r in enumerate(old)
    ]
    payloads: list[bytes] = []
    expected: list[Touchpoint] = []
    for record, tp in zip(old, new, strict=True):
        payloads += [write_single_object(v1, record), codec.encode(tp)]
        expected += [_expected(record), tp]
    results = codec.decode_many(payloads)
    assert results == expected
    # defaults are fresh per record, never one shared dict
    first, second = results[0], results[2]
    assert isinstance(first, Touchpoint) and isinstance(second, Touchpoint)
    assert first.extra is not second.extra


def test_v1_poison_is_isolated(codec: TouchpointCodec, v1: dict[str, Any]) -> None:
    payloads = [write_single_object(v1, _v1_record("refund", i)) for i in range(5)]
    payloads[2] = payloads[2][:-3]
    results = codec.decode_many(payloads)
    assert isinstance(results[2], CodecError)
    assert [r for i, r in enumerate(results) if i != 2] == [
        _expected(_v1_record("refund", i)) for i in (0, 1, 3, 4)
    ]


def test_fast_upgrade_equals_fastavro_resolution(
    codec: TouchpointCodec, v1: dict[str, Any]
) -> None:
    """v1 is read with its own schema plus defaults; that must equal Avro resolution."""
    current = load_current_schema("engage.Touchpoint")
    for writer in load_history("engage.Touchpoint"):
        fast = codec._readers[b"\xc3\x01" + fingerprint(writer)]
        assert fast.reader is None, "old envelopes take the add-fields-with-defaults path"
        resolving = dataclasses.replace(
            fast, reader=current, batch_reader=_as_batch_schema(current), added=()
        )
        records = [_v1_record(t, i) for i, t in enumerate(V1)]
        if writer is not v1:
            records = [{**r, "source": "s", "extra": {"a": "b"}} for r in records]
        payloads = [write_single_object(writer, r) for r in records]
        by_fast = [codec._read_one(fast, p) for p in payloads]
        by_avro = [codec._read_one(resolving, p) for p in payloads]
        assert by_fast == by_avro
        assert codec._read_batch(fast, payloads) == codec._read_batch(resolving, payloads)


def test_writer_needing_real_resolution_still_reads() -> None:
    """A writer that is not just fewer fields (here an int widened to long)."""
    old = {
        "type": "record",
        "name": "Touchpoint",
        "namespace": "engage",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "customer_id", "type": "string"},
            {"name": "type", "type": "string"},
            {"name": "occurred_at", "type": "int"},
            {"name": "channel", "type": "string"},
        ],
    }
    codec = TouchpointCodec(extra_writers=[old])
    reader = codec._readers[b"\xc3\x01" + fingerprint(old)]
    assert reader.reader is not None
    records = [
        {
            "event_id": f"e{i}",
            "customer_id": "c",
            "type": "app_opened",
            "occurred_at": i,
            "channel": "app",
        }
        for i in range(3)
    ]
    payloads = [write_single_object(old, r) for r in records]
    expected = [Touchpoint(f"e{i}", "c", "app_opened", i, "app") for i in range(3)]
    assert codec.decode_many(payloads) == expected
    assert codec.decode(payloads[0]) == expected[0]
    assert TouchpointCodec().decode_many(payloads[:1])[0].__class__ is CodecError


def test_schema_files_document_the_contract() -> None:
    raw = json.loads(resources.files("schemas").joinpath("engage.Touchpoint.avsc").read_text())
    fields = {f["name"]: f for f in raw["fields"]}
    assert fields["type"]["type"] == "string"
    assert "enum" in fields["type"]["doc"]
    assert fields["occurred_at"]["type"] == "long"
    for field in raw["fields"]:
        assert "logicalType" not in field, field["name"]
    assert "logicalType" in fields["occurred_at"]["doc"]
    assert fields["extra"]["type"] == {"type": "map", "values": "string"}
    assert fields["source"]["type"] == ["null", "string"]
    union = fields["properties"]["type"]
    assert union[0] == "null"
    folder = resources.files("schemas")
    for name in union[1:]:
        branch = json.loads(folder.joinpath(f"{name}.avsc").read_text())
        assert f"{branch['namespace']}.{branch['name']}" == name
        for field in branch["fields"]:
            if isinstance(field["type"], list):
                assert field["type"][0] == "null" and field["default"] is None, (name, field)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(touchpoints(types=sorted(V1_PROPERTIES)), min_size=1, max_size=10))
def test_property_any_touchpoint_written_by_v1_reads_back(tps: list[Touchpoint]) -> None:
    """Whatever v1 could carry comes back; what it could not is defaulted."""
    v1 = load_history("engage.Touchpoint")[0]
    payloads = []
    for tp in tps:
        record = _CODEC._to_record(tp)
        del record["source"], record["extra"], record["anonymous_id"]
        payloads.append(write_single_object(v1, record))
    expected = [dataclasses.replace(tp, source=None, extra={}, anonymous_id=None) for tp in tps]
    assert _CODEC.decode_many(payloads) == expected
    assert [_CODEC.decode(p) for p in payloads] == expected
