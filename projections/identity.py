"""Identity resolution: which identifiers are one person, as a fold of the log.

The facts are read in log order: each event's ``Evidence`` (its identifiers
belong together) and each ``IdentityUnlinked`` record. The state is a set of
``Person`` values, each complete in itself (its links, conflicts, the evidence
that joined it, the identifiers it must stay apart from), so it can be stored
one row per person and loaded for just the identifiers a batch names: folding
a batch over the loaded persons gives what folding the whole log would.

The rules (DESIGN.md, "Identity"):

- an event's identifiers join its primary identifier's person, in priority
  order (customer id, email, anonymous id);
- at most one customer id and one email per person; a join that would break
  that, or join identifiers an operator unlinked, is refused and recorded as
  a ``Conflict`` on the persons involved: never an error;
- the person id is its customer id, else its first anonymous id: the one seen
  earliest in event time (ties by value), so it does not depend on the order
  in which the log delivers the evidence; a person left with only an email
  (after an unlink) is named by it;
- an unlink keeps the identifier apart from every identifier the person then
  had, and re-derives both sides by folding the person's evidence again.

Pure: no I/O, no clock. Times are the events' own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from events.identity import (
    ANONYMOUS_ID,
    CUSTOMER_ID,
    EMAIL,
    LIMITED,
    Evidence,
    Identifier,
    IdentityFact,
    IdentityLinked,
    IdentityUnlinked,
    evidence_of,
    may_link,
)
from events.model import Micros, Touchpoint

Pair = tuple[Identifier, Identifier]
"""Two identifiers an operator unlinked, smaller first."""


@dataclass(frozen=True, slots=True)
class Link:
    """An identifier of a person and the event that linked it there."""

    identifier: Identifier
    evidence: str
    at: Micros
    """The evidence event's time."""
    first_seen: Micros
    """The earliest event time the identifier was seen at (names the person)."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A join refused by the merge limits or an unlink: kept, never raised."""

    evidence: Evidence
    identifier: Identifier
    """The identifier that was not joined."""
    reason: str


@dataclass(frozen=True, slots=True)
class Person:
    """One person: every field sorted, so equal histories give equal values."""

    key: Identifier
    """The identifier that names the person (``person_id`` is its value)."""
    links: tuple[Link, ...]
    conflicts: tuple[Conflict, ...] = ()
    merged_from: tuple[str, ...] = ()
    """Person ids this person absorbed (theirs and what they had absorbed)."""
    evidence: tuple[Evidence, ...] = ()
    """The first event of every distinct set of this person's identifiers
    seen together: what an unlink folds again to re-derive the person."""
    apart: tuple[Pair, ...] = ()
    """Unlinked pairs with an identifier of this person: never to join."""
    identifiers: tuple[Identifier, ...] = field(init=False, repr=False, compare=False)
    """The links' identifiers, in order: computed once, as the fold and the
    publish step ask for them many times per person."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "identifiers", tuple(link.identifier for link in self.links))

    @property
    def person_id(self) -> str:
        return self.key.value

    def link(self, identifier: Identifier) -> Link | None:
        for link in self.links:
            if link.identifier == identifier:
                return link
        return None

    def related(self) -> set[Identifier]:
        """Identifiers of other persons an unlink of this one may join with
        (those of its conflicts): a loader loads their persons beside it."""
        return {i for c in self.conflicts for i in c.evidence.identifiers}


def name_of(links: Iterable[Link]) -> Identifier:
    """The person id rule: the customer id, else the first anonymous id in
    event time (ties by value), else the email."""
    by_kind: dict[str, list[Link]] = {}
    for link in links:
        by_kind.setdefault(link.identifier.kind, []).append(link)
    for kind in (CUSTOMER_ID, ANONYMOUS_ID, EMAIL):
        found = by_kind.get(kind)
        if found:
            return min(found, key=lambda link: (link.first_seen, link.identifier.value)).identifier
    raise ValueError("a person needs at least one identifier")


def _person(
    links: Iterable[Link],
    conflicts: Iterable[Conflict] = (),
    merged_from: Iterable[str] = (),
    evidence: Iterable[Evidence] = (),
    apart: Iterable[Pair] = (),
) -> Person:
    ordered = tuple(sorted(links, key=_by_identifier))
    key = name_of(ordered)
    unique_conflicts = {(c.evidence.event_id, c.identifier, c.reason): c for c in conflicts}
    seen: dict[frozenset[Identifier], Evidence] = {}
    for item in sorted(evidence, key=_in_time):
        seen.setdefault(frozenset(item.identifiers), item)
    return Person(
        key,
        ordered,
        tuple(unique_conflicts[k] for k in sorted(unique_conflicts)) if unique_conflicts else (),
        tuple(sorted(set(merged_from) - {key.value})) if merged_from else (),
        tuple(seen.values()) if seen else (),
        tuple(sorted(set(apart))) if apart else (),
    )


_by_identifier = attrgetter("identifier")
_in_time = attrgetter("at", "event_id")


class IdentityGraph:
    """The persons a fold has loaded or built, indexed by identifier.

    ``apply`` folds one fact and returns the ``identity_linked`` records it
    implies (every identifier that joined a person or moved to another).
    ``changed`` and ``removed`` name the person keys to write back and to
    delete, so a caller persists only what a batch touched."""

    shortcuts = True
    """Take the short paths for evidence whose identifiers are all new
    (``add_new``); off only in the property that checks they
    build what the full fold builds."""

    def __init__(self, persons: Iterable[Person] = ()) -> None:
        self.persons: dict[Identifier, Person] = {}
        self.owner: dict[Identifier, Identifier] = {}
        self.changed: set[Identifier] = set()
        self.removed: set[Identifier] = set()
        self._touched: set[Identifier] = set()
        for person in persons:
            self._put(person)
        self.changed.clear()

    # -- reads

    def person_of(self, identifier: Identifier) -> Person | None:
        key = self.owner.get(identifier)
        return None if key is None else self.persons[key]

    def find(self, value: str) -> Person | None:
        """The person a read names by any identifier, kinds in priority order
        (``engage profile ID`` accepts a customer id, an anonymous id or an
        email)."""
        for kind in (CUSTOMER_ID, ANONYMOUS_ID, EMAIL):
            person = self.person_of(
                Identifier(kind, value.strip().lower() if kind == EMAIL else value)
            )
            if person is not None:
                return person
        return None

    # -- the fold

    def apply(self, fact: IdentityFact) -> list[IdentityLinked]:
        """Fold one fact; the ``identity_linked`` records it implies. The
        persons it names (and, for an unlink, those of the person's conflicts)
        must be loaded: ``Person.related`` says which."""
        if isinstance(fact, Evidence):
            if self._known(fact):
                return []
            if self.is_new(fact):
                return self._fresh(fact)
        named = set(fact.identifiers if isinstance(fact, Evidence) else (fact.identifier,))
        if isinstance(fact, IdentityUnlinked):
            unlinked = self.person_of(fact.identifier)
            named |= unlinked.related() if unlinked is not None else set()
        before: dict[Identifier, Identifier] = {}  # every identifier that may move
        for person in filter(None, map(self.person_of, named)):
            before.update((mine, person.key) for mine in person.identifiers)
        self._touched = set()
        if isinstance(fact, IdentityUnlinked):
            self._unlink(fact)
        else:
            self._evidence(fact)
        return self._moves(before)

    def knows(self, evidence: Evidence) -> bool:
        """Whether ``apply`` would change nothing for this evidence (the hot
        path a caller can take before any bookkeeping of its own)."""
        return self._known(evidence)

    def _known(self, evidence: Evidence) -> bool:
        """The hot path: nothing new (every identifier already in one person,
        none seen earlier than before, this set of them already on record
        with an earlier or the same evidence). Exactly the cases where the
        full fold would change nothing, checked without rebuilding."""
        ids = evidence.identifiers
        if len(ids) == 1 and ids[0].kind == CUSTOMER_ID:
            # A customer id seen alone names its own person whatever happens
            # later, and its time names nothing: not stored until it links.
            return True
        owner = self.owner
        key = owner.get(ids[0])
        if key is None:
            return False
        if len(ids) == 1:
            for link in self.persons[key].links:
                if link.identifier == ids[0]:
                    return link.first_seen <= evidence.at
            return False
        if any(owner.get(i) != key for i in ids[1:]):
            return False
        person = self.persons[key]
        if any(x.first_seen > evidence.at for x in person.links if x.identifier in ids):
            return False
        wanted = frozenset(ids)
        order = (evidence.at, evidence.event_id)
        return any(
            frozenset(e.identifiers) == wanted and (e.at, e.event_id) <= order
            for e in person.evidence
        )

    def is_new(self, evidence: Evidence) -> bool:
        """None of the evidence's identifiers has a person yet: ``add_new``
        applies (``shortcuts`` off: never, so the full fold runs)."""
        owner = self.owner
        return self.shortcuts and not any(i in owner for i in evidence.identifiers)

    def add_new(self, evidence: Evidence) -> Person:
        """Fold evidence whose identifiers are all new (``is_new``: a device,
        a sign-up): one person of them all, as ``_evidence`` builds it, without
        its person-by-person joins (at most one identifier per kind, none
        unlinked: nothing to refuse). A person of one keeps no evidence."""
        at, event_id, ids = evidence.at, evidence.event_id, evidence.identifiers
        if len(ids) == 1:
            person = Person(ids[0], (Link(ids[0], event_id, at, at),))
        else:
            person = _person([Link(i, event_id, at, at) for i in ids], evidence=[evidence])
        self._put(person)
        return person

    def _fresh(self, evidence: Evidence) -> list[IdentityLinked]:
        """``add_new``, and a record for each of the new person's identifiers."""
        person, at = self.add_new(evidence), evidence.at
        return [
            IdentityLinked(person.person_id, *i, evidence.event_id, at) for i in person.identifiers
        ]

    def _evidence(self, evidence: Evidence) -> None:
        """The evidence's identifiers join its primary's person; those refused
        there still join each other (unlinked from a customer id, a device
        keeps the email it was seen with), and so on until none is left."""
        todo = self._join(evidence, evidence.primary, evidence.identifiers[1:])
        while len(todo) > 1:
            todo = self._join(evidence, todo[0], todo[1:])
        if todo and (self.person_of(todo[0]) is not None or todo[0].kind != EMAIL):
            self._touch(todo[0], evidence)  # an email alone is not a person

    def _join(
        self, evidence: Evidence, first: Identifier, others: Sequence[Identifier]
    ) -> list[Identifier]:
        """Join ``others`` to ``first``'s person; the refused ones, in order."""
        anchor = self._touch(first, evidence)
        refused = []
        for other in others:
            group = self.person_of(other)
            if group is not None and group.key == anchor.key:
                anchor = self._seen(anchor, other, evidence)
                continue
            single = group is None
            if group is None:
                group = _person([Link(other, evidence.event_id, evidence.at, evidence.at)])
            reason = refusal(anchor, group)
            if reason is None:
                anchor = self._merge(anchor, group, evidence, single)
                continue
            conflict = Conflict(evidence, other, reason)
            anchor = self._replace(anchor, _rebuilt(anchor, conflicts=[conflict]))
            if not single:
                self._replace(group, _rebuilt(group, conflicts=[conflict]))
            refused.append(other)
        if others:
            self._replace(anchor, _rebuilt(anchor, evidence=[evidence]))
        return refused

    def _touch(self, identifier: Identifier, evidence: Evidence) -> Person:
        person = self.person_of(identifier)
        if person is None:
            person = _person([Link(identifier, evidence.event_id, evidence.at, evidence.at)])
            self._put(person)
            return person
        return self._seen(person, identifier, evidence)

    def _seen(self, person: Person, identifier: Identifier, evidence: Evidence) -> Person:
        """An identifier seen again: only an earlier time changes anything,
        and only for the kinds whose time can name a person."""
        link = person.link(identifier)
        if link is None or _first_seen(link, evidence) == link.first_seen:
            return person
        links = [replace(x, first_seen=evidence.at) if x is link else x for x in person.links]
        return self._replace(person, _rebuilt(person, links=links))

    def _merge(self, anchor: Person, group: Person, evidence: Evidence, single: bool) -> Person:
        """``group`` joins ``anchor``; its identifiers are linked by ``evidence``."""
        # the evidence saw its own identifiers too: an earlier time names the
        # person whichever order the log brought the two in
        joined = [
            replace(
                link,
                evidence=evidence.event_id,
                at=evidence.at,
                first_seen=_first_seen(link, evidence),
            )
            for link in group.links
        ]
        merged_from = [*anchor.merged_from, *group.merged_from]
        if not single:
            merged_from += [anchor.person_id, group.person_id]
            self._drop(group)
        person = _person(
            [*anchor.links, *joined],
            [*anchor.conflicts, *group.conflicts],
            merged_from,
            [*anchor.evidence, *group.evidence],
            [*anchor.apart, *group.apart],
        )
        return self._replace(anchor, person)

    def _unlink(self, record: IdentityUnlinked) -> None:
        """Keep the identifier apart from the person's others, start each of
        them again alone, and fold the person's evidence (and its conflicts')
        again in event time: both sides re-derived, a refused link retried."""
        target = record.identifier
        person = self.person_of(target)
        if person is None or person.person_id != record.person_id or len(person.links) < 2:
            return  # stale or a no-op: the log keeps it, the persons do not change
        pairs = [_pair(target, other) for other in person.identifiers if other != target]
        apart = [*person.apart, *pairs]
        involved = [person, *filter(None, map(self.person_of, person.related()))]
        known = {name for p in involved for name in (p.person_id, *p.merged_from)}
        self._drop(person)
        for link in person.links:
            mine = [p for p in apart if link.identifier in p]
            seed = Link(link.identifier, link.evidence, link.first_seen, link.first_seen)
            self._put(_person([seed], apart=mine))
        again = {e.event_id: e for e in [*person.evidence, *(c.evidence for c in person.conflicts)]}
        for item in sorted(again.values(), key=lambda e: (e.at, e.event_id)):
            self._evidence(item)
        # The seeds were never persons of their own: not "merged from".
        for key in list(self._touched):
            derived = self.persons.get(key)
            if derived is not None and not known.issuperset(derived.merged_from):
                merged_from = tuple(name for name in derived.merged_from if name in known)
                self._put(replace(derived, merged_from=merged_from))

    # -- bookkeeping

    def _put(self, person: Person) -> None:
        self.persons[person.key] = person
        for identifier in person.identifiers:
            self.owner[identifier] = person.key
        self.changed.add(person.key)
        self._touched.add(person.key)
        self.removed.discard(person.key)

    def _drop(self, person: Person) -> None:
        del self.persons[person.key]
        for identifier in person.identifiers:
            if self.owner.get(identifier) == person.key:
                del self.owner[identifier]
        self.changed.discard(person.key)
        self.removed.add(person.key)

    def _replace(self, old: Person, new: Person) -> Person:
        if old.key != new.key:
            self._drop(old)
        self._put(new)
        return new

    def _moves(self, before: dict[Identifier, Identifier]) -> list[IdentityLinked]:
        """An ``identity_linked`` for every identifier that is new or now in
        another person (the persons this fact wrote, ``_touched``)."""
        out = []
        for key in sorted(self._touched):
            person = self.persons.get(key)
            if person is None:
                continue
            for link in person.links:
                identifier = link.identifier
                if before.get(identifier) == key:
                    continue
                out.append(
                    IdentityLinked(
                        person.person_id, identifier.kind, identifier.value, link.evidence, link.at
                    )
                )
        return out


def _first_seen(link: Link, evidence: Evidence) -> Micros:
    """When ``link``'s identifier was first seen, counting ``evidence``: only
    an identifier the evidence names, and only of a kind whose time can name
    a person (not a customer id, which names its person whatever its time)."""
    if link.identifier.kind == CUSTOMER_ID or link.identifier not in evidence.identifiers:
        return link.first_seen
    return min(link.first_seen, evidence.at)


def _pair(a: Identifier, b: Identifier) -> Pair:
    return (a, b) if a <= b else (b, a)


def _rebuilt(
    person: Person,
    links: Iterable[Link] | None = None,
    conflicts: Iterable[Conflict] = (),
    evidence: Iterable[Evidence] = (),
) -> Person:
    """``person`` with other links, or more conflicts or evidence."""
    return _person(
        person.links if links is None else links,
        [*person.conflicts, *conflicts],
        person.merged_from,
        [*person.evidence, *evidence],
        person.apart,
    )


def refusal(anchor: Person, group: Person) -> str | None:
    """Why ``group`` may not join ``anchor``, or None: a second customer id or
    email, or an unlinked pair across the two."""
    for kind in sorted(LIMITED):
        mine = {i.value for i in anchor.identifiers if i.kind == kind}
        theirs = {i.value for i in group.identifiers if i.kind == kind}
        if mine and theirs and mine != theirs:
            return (
                f"a person has at most one {kind}: {anchor.person_id} has "
                f"{min(mine)}, {group.person_id} has {min(theirs)}"
            )
    ours = set(anchor.identifiers)
    for a, b in [*anchor.apart, *group.apart]:
        if (a in ours and b in group.identifiers) or (b in ours and a in group.identifiers):
            return f"{a} and {b} were unlinked"
    return None


def resolve(graph: IdentityGraph, event: Touchpoint) -> list[IdentityLinked]:
    """Fold one touchpoint's evidence: the per-event step of a pipeline.

    Most events carry only a customer id and are no identify: their evidence
    is one customer id, which the fold ignores (``IdentityGraph._known``), so
    they are skipped before any work. The same result as
    ``graph.apply(evidence_of(event))``, faster."""
    if not may_link(event):
        return []
    evidence = evidence_of(event)
    return [] if evidence is None else graph.apply(evidence)


def fold(facts: Sequence[IdentityFact], graph: IdentityGraph | None = None) -> IdentityGraph:
    """Fold ``facts`` (in log order) into ``graph`` (a fresh one by default)."""
    graph = IdentityGraph() if graph is None else graph
    for fact in facts:
        graph.apply(fact)
    return graph
