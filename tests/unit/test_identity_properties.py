"""Hypothesis properties of the identity fold (projections/identity.py).

- Kept per person and loaded per batch, the fold gives what one fold of the
  whole log gives, however the log is cut into batches (unlinks included).
- Without conflicts, the persons and their ids do not depend on the order in
  which the evidence arrives (the person id is chosen in event time).
- The merge limits are never broken, whatever the history.
- An unlink, folded, equals a fresh fold of the log without that link.
- ``resolve``'s shortcut for events with only a customer id changes nothing,
  and the fold's own short paths for new identifiers build what it would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from events.identity import Evidence, Identifier, IdentityFact, IdentityUnlinked, evidence_of
from events.model import Touchpoint
from projections.identity import IdentityGraph, Person, fold, resolve
from projections.identity_json import person_from_json, person_to_json
from projections.identity_router import _records

KINDS = ("customer_id", "email", "anonymous_id")


def _evidence(event_id: str, at: int, ids: Sequence[Identifier]) -> Evidence:
    """At most one identifier per kind, the primary (customer id, else
    anonymous id) first, then the email, then the anonymous id: the shape
    ``events.identity.evidence_of`` gives."""
    by_kind = {i.kind: i for i in ids}
    primary = by_kind.get("customer_id") or by_kind.get("anonymous_id") or by_kind["email"]
    rest = [by_kind[k] for k in ("email", "anonymous_id") if k in by_kind and by_kind[k] != primary]
    return Evidence(event_id, at, (primary, *rest))


@st.composite
def any_history(draw: st.DrawFn) -> list[IdentityFact]:
    """Identifiers from small pools, so merges, conflicts and unlinks are common."""
    pool = {
        "customer_id": [f"c{n}" for n in range(3)],
        "email": [f"m{n}@x.test" for n in range(3)],
        "anonymous_id": [f"a{n}" for n in range(5)],
    }
    facts: list[IdentityFact] = []
    for n in range(draw(st.integers(1, 25))):
        if facts and draw(st.integers(0, 9)) == 0:
            kind = draw(st.sampled_from(KINDS))
            value = draw(st.sampled_from(pool[kind]))
            person = draw(st.sampled_from([*pool["customer_id"], *pool["anonymous_id"]]))
            facts.append(IdentityUnlinked(person, kind, value, "test", n))
            continue
        kinds = draw(st.sets(st.sampled_from(KINDS), min_size=1).filter(lambda s: s != {"email"}))
        ids = [Identifier(k, draw(st.sampled_from(pool[k]))) for k in sorted(kinds)]
        facts.append(_evidence(f"e{n}", draw(st.integers(0, 50)), ids))
    return facts


@st.composite
def conflict_free(draw: st.DrawFn) -> list[Evidence]:
    """Each event names identifiers of one hidden true person, who has at
    most one customer id and one email: no join can break a limit."""
    people = []
    for p in range(draw(st.integers(1, 4))):
        ids = [Identifier("anonymous_id", f"a{p}.{n}") for n in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            ids.append(Identifier("customer_id", f"c{p}"))
        if draw(st.booleans()):
            ids.append(Identifier("email", f"m{p}@x.test"))
        people.append(ids)
    facts = []
    for n in range(draw(st.integers(1, 20))):
        ids = draw(st.sampled_from(people))
        chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
        one_per_kind = list({i.kind: i for i in chosen}.values())
        if {i.kind for i in one_per_kind} == {"email"}:
            one_per_kind.append(ids[0])
        facts.append(_evidence(f"e{n}", draw(st.integers(0, 50)), one_per_kind))
    return facts


def _shape(graph: IdentityGraph) -> set[tuple[str, frozenset[Identifier]]]:
    """(person id, identifiers) of every person but those of a customer id
    alone: such a person needs no row (the fold stores one only when it
    must, e.g. to keep a conflict or an unlink), so their presence is no
    difference."""
    return {
        (p.person_id, frozenset(p.identifiers))
        for p in graph.persons.values()
        if len(p.links) > 1 or p.key.kind != "customer_id"
    }


def _needed(facts: Sequence[IdentityFact]) -> set[Identifier]:
    named: set[Identifier] = set()
    for fact in facts:
        named |= set(fact.identifiers) if isinstance(fact, Evidence) else {fact.identifier}
    return named


def _fold_in_batches(facts: list[IdentityFact], cuts: list[int]) -> dict[Identifier, Person]:
    """Persons kept one JSON row each, with an identifier index; each batch
    loads the persons its identifiers name (and, when it unlinks, those of
    their conflicts), folds, writes back what changed and deletes what was
    absorbed."""
    rows: dict[Identifier, str] = {}
    index: dict[Identifier, Identifier] = {}
    bounds = [0, *sorted(set(cuts)), len(facts)]
    for start, end in pairwise(bounds):
        batch = facts[start:end]
        keys = {index[i] for i in _needed(batch) if i in index}
        if any(isinstance(f, IdentityUnlinked) for f in batch):
            related = {i for k in keys for i in _load(rows[k]).related()}
            keys |= {index[i] for i in related if i in index}
        graph = fold(batch, IdentityGraph(_load(rows[k]) for k in keys))
        for key in graph.removed:
            for i in _load(rows.pop(key)).identifiers if key in rows else ():
                if index.get(i) == key:
                    del index[i]
        for key in graph.changed:
            person = graph.persons[key]
            rows[key] = json.dumps(person_to_json(person))
            for i in person.identifiers:
                index[i] = key
    return {key: _load(row) for key, row in rows.items()}


def _load(row: str) -> Person:
    return person_from_json(json.loads(row))


@given(any_history(), st.lists(st.integers(0, 25), max_size=6))
def test_persons_kept_per_person_do_not_depend_on_the_batches(
    facts: list[IdentityFact], cuts: list[int]
) -> None:
    whole = fold(facts)
    assert _fold_in_batches(facts, [c for c in cuts if c < len(facts)]) == whole.persons


class _FullFold(IdentityGraph):
    shortcuts = False


@given(any_history())
def test_the_short_paths_build_what_the_full_fold_builds(facts: list[IdentityFact]) -> None:
    """Evidence whose identifiers are all new skips the person-by-person
    joins (``IdentityGraph._fresh``): the same records, persons
    and index as the full fold, fact by fact."""
    short, full = IdentityGraph(), _FullFold()
    for fact in facts:
        assert short.apply(fact) == full.apply(fact), fact
        assert short.persons == full.persons
        assert short.owner == full.owner


@given(any_history())
def test_the_publish_steps_short_path_writes_the_records_of_the_full_fold(
    facts: list[IdentityFact],
) -> None:
    """The router answers evidence of new identifiers from ``add_new`` alone
    (``identity_router._records``): the same entries on the log as folding
    it in full, fact by fact."""
    short, full = IdentityGraph(), _FullFold()
    for fact in facts:
        assert _records(short, fact) == _records(full, fact), fact
        assert short.persons == full.persons


@given(conflict_free(), st.randoms(use_true_random=False))
def test_without_conflicts_the_order_of_the_evidence_does_not_matter(
    facts: list[Evidence], random: object
) -> None:
    shuffled = list(facts)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    first, second = fold(facts), fold(shuffled)
    assert _shape(first) == _shape(second)
    assert all(not p.conflicts for p in first.persons.values())
    # one person per component: every true person's ids seen together are one
    for person in first.persons.values():
        kinds = [i.kind for i in person.identifiers]
        assert person.person_id == next(
            (i.value for i in person.identifiers if i.kind == "customer_id"), person.person_id
        )
        assert kinds.count("customer_id") <= 1


@given(any_history())
def test_the_merge_limits_are_never_broken(facts: list[IdentityFact]) -> None:
    graph = IdentityGraph()
    for fact in facts:
        graph.apply(fact)
        seen: set[Identifier] = set()
        for key, person in graph.persons.items():
            assert key == person.key and person.key in person.identifiers
            kinds = [i.kind for i in person.identifiers]
            assert kinds.count("customer_id") <= 1 and kinds.count("email") <= 1
            assert seen.isdisjoint(person.identifiers)
            seen |= set(person.identifiers)
            ours = set(person.identifiers)
            assert not any(a in ours and b in ours for a, b in person.apart)
        assert seen == set(graph.owner)


@given(conflict_free(), st.data())
def test_an_unlink_then_a_replay_equals_a_fresh_fold_without_the_link(
    facts: list[Evidence], data: st.DataObject
) -> None:
    graph = fold(facts)
    joined = [p for p in graph.persons.values() if len(p.identifiers) > 1]
    if not joined:
        return
    person = data.draw(st.sampled_from(joined))
    target = data.draw(st.sampled_from(person.identifiers))
    unlink = IdentityUnlinked(person.person_id, target.kind, target.value, "test", 99)
    graph.apply(unlink)
    replayed = fold([*facts, unlink])
    assert replayed.persons == graph.persons
    without = [
        Evidence(f.event_id, f.at, tuple(i for i in f.identifiers if i != target))
        if target in f.identifiers and len(f.identifiers) > 1
        else f
        for f in facts
    ]
    alone = (target.value, frozenset({target}))
    assert _shape(graph) - {alone} == _shape(fold(without)) - {alone}
    assert graph.person_of(target) is not None


@st.composite
def touchpoints(draw: st.DrawFn) -> list[Touchpoint]:
    """Events as ingest stores them: a customer id, an anonymous id or both
    (anonymous only: the customer id holds the anonymous id), some identify
    events with an email, some blocked values."""
    out = []
    for n in range(draw(st.integers(1, 20))):
        customer = draw(st.sampled_from(["c1", "c2", "null", None]))
        anonymous = draw(st.sampled_from(["a1", "a2", "0000", None]))
        if customer is None and anonymous is None:
            anonymous = "a3"
        kind = draw(st.sampled_from(["identify", "web_visit"]))
        email = draw(st.sampled_from(["M@x.test", " m@x.test", "n@x.test", "undefined"]))
        out.append(
            Touchpoint(
                f"e{n}",
                customer or str(anonymous),
                kind,
                draw(st.integers(0, 50)),
                "web",
                properties={"email": email} if kind == "identify" else {},
                anonymous_id=anonymous,
            )
        )
    return out


@given(touchpoints())
def test_resolve_skips_work_but_not_meaning(events: list[Touchpoint]) -> None:
    fast, full = IdentityGraph(), IdentityGraph()
    for event in events:
        evidence = evidence_of(event)
        assert resolve(fast, event) == ([] if evidence is None else full.apply(evidence))
    assert fast.persons == full.persons
