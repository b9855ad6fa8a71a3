"""The identity property of issue 13, through the whole path on the memory
adapters: publish (the identity router keys events by person) and process
(the pipeline re-derives persons at identity records).

For histories without conflicts, the persons and their profiles do not depend
on how the log is cut: into publish calls, or into processing batches. Both
are compared with an oracle that knows the true persons: every event of a
person's identifiers folded in event time under its person id (its customer
id, else its first anonymous id).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.pipeline import Pipeline
from consumers.processor import Processor
from events.adapters.memory import MemoryDeadLetters, MemoryLog
from events.codec import TouchpointCodec
from events.ingest import parse_line
from events.model import Touchpoint
from events.publisher import Publisher
from events.timefmt import format_iso
from projections.adapters.memory import MemoryProjectionStore
from projections.adapters.memory_identity import MemoryIdentityStore
from projections.evolve import fold
from projections.identity_router import IdentityRouter
from rules import RuleSet, default_rules

PARTITIONS = 3
START = 1_767_225_600_000_000  # 2026-01-01


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of a few people, each with its own identifiers (no conflicts):
    a customer id (or none), up to two devices, maybe an email."""
    people = draw(st.integers(1, 4))
    out: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 18))):
        who = draw(st.integers(0, people - 1))
        has_customer = who % 2 == 0
        device = f"dev-{who}-{draw(st.integers(0, 1))}"
        kind = draw(st.sampled_from(["customer", "device", "both", "identify"]))
        if kind == "customer" and not has_customer:
            kind = "device"
        event: dict[str, Any] = {
            "event_id": f"e{n}",
            "occurred_at": format_iso(START + n * 60_000_000),
        }
        if kind in ("customer", "both") or (kind == "identify" and has_customer and n % 2):
            event["customer_id"] = f"cust-{who}"
        if kind in ("device", "both") or "customer_id" not in event:
            event["anonymous_id"] = device
        if kind == "identify":
            event["type"] = "identify"
            event["properties"] = {"email": f"p{who}@example.com"}
        else:
            event["type"] = "purchase" if n % 3 == 0 else "web_visit"
            event["properties"] = (
                {"order_id": f"o{n}", "amount": float(n)}
                if event["type"] == "purchase"
                else {"url": f"https://x/{n}"}
            )
        out.append(event)
    return out


@st.composite
def late_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """``histories`` spread over weeks, some events late (earlier than the
    one before them): the default rules' timers come due between events, and
    a late event meets a partition clock others moved past it."""
    events = [dict(e) for e in draw(histories())]
    at = START
    used: set[int] = set()
    for event in events:
        at += draw(st.integers(0, 9 * 86_400)) * 1_000_000
        late = draw(st.integers(0, 3)) == 0
        when = at - (draw(st.integers(0, 5 * 86_400)) * 1_000_000 if late else 0)
        # no two at one instant: events of one time, folded from two merged
        # identifiers, keep the order they were folded in (``recent``)
        while when in used:
            when += 1_000_000
        used.add(when)
        event["occurred_at"] = format_iso(when)
    return events


def _oracle(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only persons whose identifiers the history actually links: a device
    never seen beside its person's other identifiers stays its own person."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for e in events:
        ids = [e.get("customer_id"), e.get("anonymous_id")]
        if e["type"] == "identify":
            ids.append("email:" + e["properties"]["email"])
        named = [find(i) for i in ids if i]
        for other in named[1:]:
            parent[find(other)] = find(named[0])
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        groups.setdefault(find(e.get("customer_id") or e["anonymous_id"]), []).append(e)
    out: dict[str, dict[str, Any]] = {}
    for members in groups.values():
        customers = {e["customer_id"] for e in members if e.get("customer_id")}
        person = (
            min(customers)
            if customers
            else min((e["occurred_at"], e["anonymous_id"]) for e in members)[1]
        )
        parsed = [parse_line(orjson.dumps(e).decode(), None) for e in members]
        touchpoints = [p for p in parsed if isinstance(p, Touchpoint)]
        rekeyed = [_as(p, person) for p in touchpoints]
        out[person] = _comparable(fold(None, rekeyed, person).to_state())
    return out


def _as(event: Touchpoint, person: str) -> Touchpoint:
    from dataclasses import replace

    return replace(event, customer_id=person)


def _run(
    events: list[dict[str, Any]],
    publish_cuts: list[int],
    batch: int,
    rules: RuleSet | None = None,
    triggers: set[str] | None = None,
    keep: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The profiles (``_comparable``, but for the fields in ``keep``);
    ``triggers``: filled with "customer rule trigger_id" of each trigger fired."""
    log = MemoryLog(PARTITIONS)
    codec = TouchpointCodec()
    identity = MemoryIdentityStore()
    publisher = Publisher(
        log, MemoryDeadLetters(), codec, router=IdentityRouter(identity, PARTITIONS)
    )
    lines = [orjson.dumps(e).decode() for e in events]
    start = 0
    for cut in [*publish_cuts, len(lines)]:
        if cut > start:
            assert publisher.publish_lines(lines[start:cut], "test").rejected == 0
            start = cut
    store = MemoryProjectionStore(log)
    pipeline = Pipeline(codec, rules=rules, identity=identity, history=log)
    Processor(log, store, pipeline, batch).run(until_idle=True)
    with store.transaction() as tx:
        found = tx.load_profiles(store.sample_ids(10**6))
        if triggers is not None:
            triggers.update(
                f"{t.customer_id} {t.rule_id} {i}" for i, (t, _, _) in tx.t.outbox.items()
            )
    return {k: _comparable(p.to_state(), keep) for k, p in found.items()}


def _comparable(state: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The profile without ``folded_keys`` (which keys were folded is the
    pipeline's bookkeeping, not part of the fold) and the rules' memory (the
    fold's oracle runs no rules), and with floats to 12 significant digits: a
    merge folds the absorbed events into the person's profile after its own,
    and a time-decayed sum added in another order differs in the last bits."""
    return {k: _rounded(v) for k, v in state.items() if k not in BOOKKEEPING - keep}


BOOKKEEPING = frozenset({"folded_keys", "rule_state", "open_goals"})


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("rules", [None, default_rules()], ids=["no rules", "default rules"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories(),
    publish_cuts=st.lists(st.integers(1, 17), max_size=4).map(sorted),
    batch=st.integers(1, 8),
)
def test_persons_and_profiles_do_not_depend_on_the_cuts(
    rules: RuleSet | None, history: list[dict[str, Any]], publish_cuts: list[int], batch: int
) -> None:
    """With the default rules too, which arm and fire timers: a person
    absorbed in a batch must still be gone, and nobody's fold may change."""
    got = _run(history, publish_cuts, batch, rules)
    assert got == _oracle(history)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=late_histories(), batch=st.integers(2, 12))
def test_a_batch_decides_as_if_cut_at_every_record(
    history: list[dict[str, Any]], batch: int
) -> None:
    """With the default rules, timers due between events and late events: a
    batch holding identity records (decided per person, with clock stand-ins
    only where a late record needs one) fires the triggers and leaves the
    profiles, rule memory included, that one record per batch does."""
    rules = default_rules()
    one, many = set[str](), set[str]()
    memory = frozenset({"rule_state", "open_goals"})
    alone = _run(history, [], 1, rules, one, memory)
    assert _run(history, [], batch, rules, many, memory) == alone
    assert many == one


DAY = 86_400_000_000


def _event(event_id: str, days: float, type_: str = "web_visit", **ids: str) -> dict[str, Any]:
    properties: dict[str, Any] = (
        {"order_id": f"o-{event_id}", "amount": 20.0}
        if type_ == "purchase"
        else {"url": f"https://x/{event_id}"}
    )
    at = format_iso(START + int(days * DAY))
    return {"event_id": event_id, "occurred_at": at, "type": type_, "properties": properties, **ids}


# cust-c and cust-e share a partition; dev-e joins cust-e at p2 (its identity
# records come before p2 on the log), so cust-e's later events are decided
# per person, beside the batch's other events
LATE_CLOCKS = {
    # cust-c's late visit meets the clock cust-e moved past its 30 quiet days
    "a late event of another": (
        [
            _event("x1", 0, "purchase", customer_id="cust-c"),
            _event("p1", 1, anonymous_id="dev-e"),
            _event("p2", 2, customer_id="cust-e", anonymous_id="dev-e"),
            _event("p3", 31, customer_id="cust-e"),
            _event("x2", 29, customer_id="cust-c"),
        ],
        "cust-c inactive-30d",
    ),
    # cust-e's late visit meets the clock cust-c moved past its quiet days
    "a late event of the merged person": (
        [
            _event("p1", 1, anonymous_id="dev-e"),
            _event("p2", 2, "purchase", customer_id="cust-e", anonymous_id="dev-e"),
            _event("x1", 40, customer_id="cust-c"),
            _event("p3", 31, customer_id="cust-e"),
        ],
        "cust-e inactive-30d",
    ),
    # the batch ends on cust-e's event: the partition's clock is where it left it
    "the merged person moves the clock last": (
        [
            _event("x1", 0, "purchase", customer_id="cust-c"),
            _event("p1", 1, anonymous_id="dev-e"),
            _event("p2", 2, customer_id="cust-e", anonymous_id="dev-e"),
            _event("p3", 31, customer_id="cust-e"),
        ],
        "cust-c inactive-30d",
    ),
}


@pytest.mark.parametrize("case", LATE_CLOCKS)
def test_each_event_meets_the_clock_it_would_in_a_batch_of_its_own(case: str) -> None:
    """A batch with identity records decides the merged person apart from
    the rest, with clock records standing in only where an event is late or
    the batch ends: the quiet timer fires exactly as when every record is a
    batch of its own."""
    history, expected = LATE_CLOCKS[case]
    rules = default_rules()
    memory = frozenset({"rule_state", "open_goals"})
    one, many = set[str](), set[str]()
    alone = _run(history, [], 1, rules, one, memory)
    assert _run(history, [], 100, rules, many, memory) == alone
    assert many == one
    assert any(t.startswith(expected + " ") for t in one), one
