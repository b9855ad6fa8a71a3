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
    events: list[dict[str, Any]], publish_cuts: list[int], batch: int, rules: RuleSet | None = None
) -> dict[str, Any]:
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
    return {k: _comparable(p.to_state()) for k, p in found.items()}


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The profile without ``folded_keys`` (which keys were folded is the
    pipeline's bookkeeping, not part of the fold) and the rules' memory (the
    fold's oracle runs no rules), and with floats to 12 significant digits: a
    merge folds the absorbed events into the person's profile after its own,
    and a time-decayed sum added in another order differs in the last bits."""
    return {k: _rounded(v) for k, v in state.items() if k not in BOOKKEEPING}


BOOKKEEPING = frozenset({"folded_keys", "rule_state", "open_goals"})


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories(),
    publish_cuts=st.lists(st.integers(1, 17), max_size=4).map(sorted),
    batch=st.integers(1, 8),
)
def test_persons_and_profiles_do_not_depend_on_the_cuts(
    history: list[dict[str, Any]], publish_cuts: list[int], batch: int
) -> None:
    got = _run(history, publish_cuts, batch)
    assert got == _oracle(history)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories(),
    publish_cuts=st.lists(st.integers(1, 17), max_size=4).map(sorted),
    batch=st.integers(1, 8),
)
def test_with_the_default_rules_too(
    history: list[dict[str, Any]], publish_cuts: list[int], batch: int
) -> None:
    """The rules arm and fire timers: a person absorbed in a batch must still
    be gone, and nobody's fold may change."""
    got = _run(history, publish_cuts, batch, default_rules())
    assert got == _oracle(history)
