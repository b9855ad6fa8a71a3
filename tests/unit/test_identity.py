"""Identity resolution, by example: what an event claims (events/identity.py),
how the fold turns claims into persons (projections/identity.py), and the
identity records on the log (events/codec/identity.py, events/control.py)."""

from __future__ import annotations

import pytest

from events.codec import CodecError, fingerprint, load_current_schema, load_history
from events.codec.identity import linked_codec, unlinked_codec
from events.control import identity_entry, is_control, is_identity, without_control
from events.identity import (
    Evidence,
    Identifier,
    IdentityLinked,
    IdentityUnlinked,
    evidence_of,
    identifier,
    is_blocked,
)
from events.log import LogRecord
from events.model import Touchpoint
from projections.identity import IdentityGraph, fold


def c(value: str) -> Identifier:
    return Identifier("customer_id", value)


def a(value: str) -> Identifier:
    return Identifier("anonymous_id", value)


def e(value: str) -> Identifier:
    return Identifier("email", value)


def ev(event_id: str, at: int, *ids: Identifier) -> Evidence:
    return Evidence(event_id, at, ids)


def persons(graph: IdentityGraph) -> dict[str, set[str]]:
    return {p.person_id: {str(i) for i in p.identifiers} for p in graph.persons.values()}


@pytest.mark.parametrize(
    "value",
    ["", "  ", "0", "-1", "null", "NULL", "None", "undefined", "Anonymous", " anonymous ", "000"],
)
def test_blocked_values_never_name_a_person(value: str) -> None:
    assert is_blocked(value)
    assert identifier("anonymous_id", value) is None


def test_all_zeros_is_blocked_but_ids_with_zeros_are_not() -> None:
    assert is_blocked("00000000-0000-0000-0000-000000000000")
    assert not is_blocked("100")
    assert not is_blocked("c-000001")
    assert not is_blocked("nullable")


def test_an_email_is_trimmed_and_lower_cased_an_id_is_exact() -> None:
    assert identifier("email", "  Ada@Example.TEST ") == e("ada@example.test")
    assert identifier("customer_id", "Cust-1") == c("Cust-1")
    with pytest.raises(ValueError, match="unknown identifier kind"):
        identifier("phone", "1")


def test_evidence_of_a_touchpoint_names_its_ids_primary_first() -> None:
    identify = Touchpoint(
        "t1", "cust-1", "identify", 5, "other", properties={"email": "A@X.test"}, anonymous_id="d1"
    )
    assert evidence_of(identify) == ev("t1", 5, c("cust-1"), e("a@x.test"), a("d1"))
    # sent with only an anonymous id: customer_id is that same value, not a customer id
    anonymous = Touchpoint("t2", "d1", "web_visit", 6, "web", anonymous_id="d1")
    assert evidence_of(anonymous) == ev("t2", 6, a("d1"))
    blocked = Touchpoint("t3", "anonymous", "web_visit", 7, "web", anonymous_id="anonymous")
    assert evidence_of(blocked) is None
    # a blocked customer id leaves the anonymous id as the primary
    mixed = Touchpoint("t4", "null", "web_visit", 8, "web", anonymous_id="d2")
    assert evidence_of(mixed) == ev("t4", 8, a("d2"))


def test_an_anonymous_browse_then_a_purchase_is_one_person_named_by_the_customer_id() -> None:
    graph = IdentityGraph()
    assert [r.person_id for r in graph.apply(ev("e1", 10, a("d1")))] == ["d1"]
    linked = graph.apply(ev("e2", 20, c("cust-1"), a("d1")))
    assert {(r.person_id, r.kind, r.value, r.evidence) for r in linked} == {
        ("cust-1", "anonymous_id", "d1", "e2"),
        ("cust-1", "customer_id", "cust-1", "e2"),
    }
    assert persons(graph) == {"cust-1": {"anonymous_id:d1", "customer_id:cust-1"}}
    person = graph.find("d1")
    assert person is not None and person.merged_from == ("d1",)
    assert graph.removed == {a("d1")}


def test_two_devices_joined_by_an_email_and_the_first_device_names_them() -> None:
    graph = fold(
        [
            ev("e1", 30, a("phone")),
            ev("e2", 10, a("laptop")),
            ev("e3", 40, a("phone"), e("ada@x.test")),
            ev("e4", 50, a("laptop"), e("ada@x.test")),
        ]
    )
    # laptop was seen first in event time, though the log delivered it second
    assert persons(graph) == {
        "laptop": {"anonymous_id:phone", "anonymous_id:laptop", "email:ada@x.test"}
    }
    assert graph.find("ADA@x.test ") is graph.find("phone")


def test_a_device_joining_by_an_earlier_event_is_first_seen_then() -> None:
    """The log brought the device alone (t=50) before the email event that
    also saw it earlier (t=10): the earlier time names the person, as it
    would in the other order."""
    orders = [
        [
            ev("e1", 50, a("phone")),
            ev("e2", 30, a("laptop")),
            ev("e3", 10, e("m"), a("phone")),
            ev("e4", 40, e("m"), a("laptop")),
        ],
        [
            ev("e3", 10, e("m"), a("phone")),
            ev("e1", 50, a("phone")),
            ev("e2", 30, a("laptop")),
            ev("e4", 40, e("m"), a("laptop")),
        ],
    ]
    for order in orders:
        graph = fold(order)
        person = graph.find("phone")
        assert person is not None and person.person_id == "phone", order
        link = person.link(a("phone"))
        assert link is not None and link.first_seen == 10


def test_a_second_customer_id_is_a_conflict_not_a_merge() -> None:
    graph = fold([ev("e1", 10, c("cust-1"), a("d1")), ev("e2", 20, c("cust-2"), a("d1"))])
    assert persons(graph) == {
        "cust-1": {"customer_id:cust-1", "anonymous_id:d1"},
        "cust-2": {"customer_id:cust-2"},
    }
    for name in ("cust-1", "cust-2"):
        person = graph.find(name)
        assert person is not None
        [conflict] = person.conflicts
        assert conflict.evidence.event_id == "e2"
        assert conflict.identifier == a("d1")
        assert "at most one customer_id" in conflict.reason


def test_a_second_email_is_a_conflict() -> None:
    graph = fold(
        [ev("e1", 10, c("cust-1"), e("x@a.test")), ev("e2", 20, c("cust-1"), e("y@a.test"))]
    )
    assert persons(graph) == {"cust-1": {"customer_id:cust-1", "email:x@a.test"}}
    person = graph.find("cust-1")
    assert person is not None and [x.identifier for x in person.conflicts] == [e("y@a.test")]


def test_an_unlink_rederives_both_sides_and_keeps_them_apart() -> None:
    facts: list[Evidence | IdentityUnlinked] = [
        ev("e1", 10, a("shared")),
        ev("e2", 20, c("cust-1"), a("shared")),
        ev("e3", 25, c("cust-1"), a("own")),
        ev("e4", 30, c("cust-2"), a("shared")),  # refused: shared is cust-1's
    ]
    graph = fold(facts)
    assert persons(graph)["cust-2"] == {"customer_id:cust-2"}
    unlink = IdentityUnlinked("cust-1", "anonymous_id", "shared", "a shop's kiosk", 40)
    linked = graph.apply(unlink)
    # the refused evidence is folded again: the kiosk now joins cust-2
    assert persons(graph) == {
        "cust-1": {"customer_id:cust-1", "anonymous_id:own"},
        "cust-2": {"customer_id:cust-2", "anonymous_id:shared"},
    }
    assert [(r.person_id, r.value, r.evidence) for r in linked] == [("cust-2", "shared", "e4")]
    # a later event naming both again stays apart
    graph.apply(ev("e5", 50, c("cust-1"), a("shared")))
    assert persons(graph)["cust-1"] == {"customer_id:cust-1", "anonymous_id:own"}
    person = graph.find("cust-1")
    assert person is not None and any("were unlinked" in x.reason for x in person.conflicts)
    # a replay of the same facts gives the same persons
    assert fold([*facts, unlink, ev("e5", 50, c("cust-1"), a("shared"))]).persons == graph.persons


def test_a_stale_unlink_changes_nothing() -> None:
    graph = fold([ev("e1", 10, c("cust-1"), a("d1"))])
    before = dict(graph.persons)
    assert graph.apply(IdentityUnlinked("someone-else", "anonymous_id", "d1", "typo", 20)) == []
    assert graph.apply(IdentityUnlinked("cust-1", "anonymous_id", "nope", "typo", 20)) == []
    assert graph.persons == before


def test_identity_records_round_trip_and_are_filtered_like_control_records() -> None:
    linked = IdentityLinked("cust-1", "anonymous_id", "d1", "e2", 20)
    unlinked = IdentityUnlinked("cust-1", "anonymous_id", "d1", "shared kiosk", 30)
    assert linked_codec().decode(linked_codec().encode(linked)) == linked
    assert unlinked_codec().decode(unlinked_codec().encode(unlinked)) == unlinked
    entries = [identity_entry(linked), identity_entry(unlinked)]
    assert [x.record_id for x in entries] == [
        "~linked/cust-1/anonymous_id:d1/e2",
        "~unlinked/cust-1/anonymous_id:d1/30",
    ]
    assert all(x.key == "cust-1" and is_identity(x.payload) for x in entries)
    # the processor does not fold them yet: not control records it decodes
    assert not any(is_control(x.payload) for x in entries)
    records = [LogRecord(0, n, x.key, x.payload) for n, x in enumerate(entries)]
    assert without_control(records) == []
    with pytest.raises(CodecError, match=r"unknown engage\.IdentityLinked writer schema"):
        linked_codec().decode(unlinked_codec().encode(unlinked))


# Pinned like the envelope in test_schema_evolution.py: when this fails, the
# schema changed, so copy the previous version into schemas/history/ (as
# <name>.v1.avsc), add an old-writer/new-reader test, then update the pin.
IDENTITY_SCHEMAS = {
    "engage.IdentityLinked": "78d2e4d099174071",
    "engage.IdentityUnlinked": "c913595004dcf4d6",
}


@pytest.mark.parametrize("name", sorted(IDENTITY_SCHEMAS))
def test_the_identity_schemas_change_only_deliberately(name: str) -> None:
    assert fingerprint(load_current_schema(name)).hex() == IDENTITY_SCHEMAS[name]
    assert load_history(name) == ()
