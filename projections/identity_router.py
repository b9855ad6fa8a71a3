"""The identity stage, at the one publish step: every event is appended keyed
by its **person**, with the ``identity_linked`` records it implies just before
it.

Why at the door: a person's profile, timers and rules need all of the
person's events on one partition, in one order, read by one writer. Keying
each event by its person when it is appended puts them there, in the
PostgreSQL log and in Kafka alike, with no second topic to copy every event
to. A customer id always names its own person (a person has at most one, and
it is the person id), so events that carry only a customer id, most of them,
skip this stage without touching the database.

What goes on the log, per event with an anonymous id or an identify email:

- an ``identity_linked`` record keyed by the person for every identifier that
  joined it or moved into it (``IdentityGraph.apply``), except an identifier
  seen for the first time that is its own person (a new device: nothing to
  merge) and an email (personal data is never on the log in clear, and an
  email keys no events: its link is kept in the identity store, with the
  evidence event, and erased with the person);
- for an identifier that left another person, the same record once more,
  keyed by the person it left (its id ends ``/from/<person>``): that person's
  partition learns it lost the identifier, and its writer re-derives or
  drops that profile (``consumers.identity_changes``);
- the event, keyed by its person.

Exactly once: the persons and the appended records commit in one
transaction where the log is in the same database. Elsewhere (Kafka) the
records are appended before the persons commit: a crash in between leaves
the publish unacknowledged, and its retry folds the same evidence against the
same persons, so it appends the same records with the same ids, which the
processor drops as repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from events.control import IDENTITY_TYPE, identity_entry
from events.errors import EngageError
from events.identity import (
    EMAIL,
    REDERIVED_SOURCE,
    Evidence,
    Identifier,
    IdentityLinked,
    IdentityUnlinked,
    evidence_of,
    may_link,
)
from events.log import TOUCHPOINTS
from events.model import Micros, Touchpoint
from events.ports import AppendResult, Entry
from projections.identity import IdentityGraph, Person
from projections.identity_ports import IdentityStore, IdentityTx, Pseudonym

Append = Callable[[Sequence[Entry]], AppendResult]


class IdentityError(EngageError):
    """An unlink that names no person, or an identifier the person lacks."""


class IdentityRouter:
    def __init__(self, store: IdentityStore, partitions: int) -> None:
        self.store = store
        self.partitions = partitions

    def route(
        self, events: Sequence[Touchpoint], entries: Sequence[Entry], append: Append
    ) -> AppendResult:
        """Append ``entries`` (one per event, keyed by customer id) keyed by
        person, with the identity records; ``accepted`` counts events only."""
        at = [i for i, e in enumerate(events) if may_link(e)]
        if not at:
            return append(entries)
        with self.store.transaction() as tx:
            pseudonym = tx.pseudonym
            found = {i: evidence_of(events[i], pseudonym) for i in at}
            named = {x for ev in found.values() if ev is not None for x in ev.identifiers}
            graph = IdentityGraph(tx.load(named))
            out: list[Entry] = []
            records = 0
            done = 0  # entries before this index are in ``out``
            for i in at:
                out += entries[done:i]  # most of a batch: no identity, as it came
                done = i + 1
                entry = entries[i]
                evidence = found[i]
                if evidence is not None:
                    linked = _records(graph, evidence)
                    records += len(linked)
                    out += linked
                    person = graph.person_of(evidence.primary)
                    if person is not None and person.person_id != entry.key:
                        entry = Entry(
                            entry.record_id,
                            person.person_id,
                            entry.payload,
                            entry.occurred_at,
                            entry.type,
                        )
                out.append(entry)
            out += entries[done:]
            result = self._append(tx, out, append)
            tx.save(graph)
        identity_dups = sum(1 for d in result.duplicates if d.startswith("~"))
        return AppendResult(
            result.accepted - (records - identity_dups),
            [d for d in result.duplicates if not d.startswith("~")],
        )

    def unlink(
        self, name: str, identifier: str, reason: str, at: Micros, append: Append
    ) -> list[Entry]:
        """``engage identity unlink PERSON IDENTIFIER --reason TEXT``: the
        ``identity_unlinked`` record keyed by the person, then the records of
        both re-derived sides. ``name`` may be any identifier of the person."""
        if not reason.strip():
            raise IdentityError("an unlink needs a reason (--reason TEXT)")
        with self.store.transaction() as tx:
            person = tx.find(name)
            if person is None:
                raise IdentityError(f"no person has the identifier {name!r}")
            target = _identifier_of(person, identifier, tx.pseudonym)
            graph = IdentityGraph(tx.load({*person.identifiers, *person.related()}))
            record = IdentityUnlinked(person.person_id, target.kind, target.value, reason, at)
            out = [identity_entry(record), *_records(graph, record, REDERIVED_SOURCE)]
            self._append(tx, out, append)
            tx.save(graph)
        return out

    def _append(self, tx: IdentityTx, entries: list[Entry], append: Append) -> AppendResult:
        result = tx.append(TOUCHPOINTS, entries, self.partitions)
        return append(entries) if result is None else result


def _identifier_of(person: Person, value: str, pseudonym: Pseudonym) -> Identifier:
    for identifier in person.identifiers:
        wanted = pseudonym(value) if identifier.kind == EMAIL else value
        if identifier.value == wanted:
            return identifier
    names = ", ".join(str(i) for i in person.identifiers)
    raise IdentityError(f"person {person.person_id} has no identifier {value!r} (it has {names})")


def _records(
    graph: IdentityGraph, fact: Evidence | IdentityUnlinked, source: str | None = None
) -> list[Entry]:
    """Fold one fact; the entries for what moved (see the module docstring).
    ``source``: set on the records (an unlink's re-derived sides say so)."""
    if isinstance(fact, Evidence):
        if graph.knows(fact):
            return []  # most evidence: nothing new
        if graph.is_new(fact):
            # the rest, mostly: a new device or sign-up. Nothing was anyone's
            # before, so no record is built for what is left off the log
            new = graph.add_new(fact)
            name = new.person_id
            return [
                identity_entry(IdentityLinked(name, i.kind, i.value, fact.event_id, fact.at))
                for i in new.identifiers
                if _on_log(i, name, None)
            ]
    named = fact.identifiers if isinstance(fact, Evidence) else (fact.identifier,)
    before: dict[Identifier, str] = {}
    for identifier in named:
        person = graph.person_of(identifier)
        if person is not None:
            before.update((mine, person.person_id) for mine in person.identifiers)
            if isinstance(fact, IdentityUnlinked):
                for other in person.related():
                    found = graph.person_of(other)
                    if found is not None:
                        before.update((x, found.person_id) for x in found.identifiers)
    out: list[Entry] = []
    for record in graph.apply(fact):
        was = before.get(record.identifier)
        if not _on_log(record.identifier, record.person_id, was):
            continue
        if source is not None:
            record = replace(record, source=source)
        entry = identity_entry(record)
        out.append(entry)
        if was is not None and was != record.person_id:
            out.append(
                Entry(
                    f"{entry.record_id}/from/{was}",
                    was,
                    entry.payload,
                    entry.occurred_at,
                    IDENTITY_TYPE,
                )
            )
    return out


def _on_log(identifier: Identifier, person_id: str, was: str | None) -> bool:
    """Whether an identifier's link to ``person_id`` is written on the log
    (``was``: its person before, None for a new one): never an email
    (personal, never on the log in clear; it keys no events), nor a new
    identifier that is its own person (nothing moved)."""
    if identifier.kind == EMAIL:
        return False
    return was is not None or identifier.value != person_id
