"""What the processor does when an identity record reaches it: re-derive the
profiles of the persons it names from the log.

The publish step keys every event by its person and puts an
``identity_linked`` record just before the event that caused it
(``projections.identity_router``). A record keyed by its own person says the
identifier joined that person; a record keyed by another person (a *from*
record) says that person lost the identifier. So the writer of each
partition learns, in log order, every change to the persons it owns:

- a person that gained an identifier with events of its own (an anonymous
  device, a customer id: not an email, which keys no event) is **re-folded**:
  every event of every identifier it has now, read back from the log by the
  keys they were appended under (its identifiers, and the persons it
  absorbed), up to this record, folded in event time by ``decide`` with the
  rules in **shadow**: what would have fired is remembered, not sent;
- its rule memory is then the **union** of that shadow memory and the memory
  it had, so a merge never gives a person a second "once per customer"
  trigger that one side already had, and the frequency cap counts both sides;
- a person that lost an identifier is re-folded the same way from what it
  has left, or, when it is no person any more (it was absorbed), its profile
  and timers are dropped.

The persons' identifiers come from the identity store as they are now (the
publish step's latest decisions); a record read long after later merges
re-folds with those too, and the later records then re-fold it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from events.codec import CodecError, TouchpointCodec
from events.control import without_control
from events.identity import (
    EMAIL,
    REDERIVED_SOURCE,
    Identifier,
    IdentityLinked,
    IdentityUnlinked,
    evidence_of,
)
from events.keyring import KeyRing
from events.model import Touchpoint
from events.ports import CustomerHistory, LogRecord
from events.sealing import unseal_events
from projections.identity import Person
from projections.identity_ports import IdentityReads
from projections.person_history import history_keys
from projections.predictions import Model
from projections.profile import Profile
from rules.decide import Record, decide
from rules.memory_union import union_memory
from rules.model import RuleSet


@dataclass(frozen=True, slots=True)
class IdentityMark:
    """An identity record where the processor met it: the key it was
    appended under (the person whose partition holds it) and its position."""

    key: str
    partition: int
    offset: int
    record: IdentityLinked | IdentityUnlinked


def touched(marks: Sequence[IdentityMark]) -> dict[str, IdentityMark]:
    """The persons whose profiles the records change, each with the first
    record that names it (the re-fold reads the log up to that one)."""
    out: dict[str, IdentityMark] = {}
    for mark in marks:
        record = mark.record
        own = mark.key == record.person_id and isinstance(record, IdentityLinked)
        if own and record.kind == EMAIL:
            continue  # an email keys no events
        # (the router writes no record for a new identifier that is its own
        # person, so one that names its own person moved here from another)
        out.setdefault(mark.key, mark)
    return out


@dataclass(slots=True)
class Rederived:
    profiles: dict[str, Profile]
    timers: dict[str, dict[str, int]]
    dropped: list[str]


@dataclass(slots=True)
class Prepared:
    """What a batch's identity records need from outside, read once per
    batch: the persons they name, and every event of their identifiers on
    the log (decoded, opened), with its position."""

    identifiers: dict[str, frozenset[Identifier]]
    """Every named person that exists, with its identifiers."""
    persons: dict[str, Person]
    """The whole person, for those an unlink names (folded from every key)."""
    events: dict[str, list[tuple[int, int, str, Touchpoint]]]
    """person -> (partition, offset, key, event) in log order."""


def prepare(
    marks: Sequence[IdentityMark],
    identity: IdentityReads,
    history: CustomerHistory,
    codec: TouchpointCodec,
    keys: KeyRing | None,
) -> Prepared:
    """One look-up of the persons, one read of their histories, one decode
    and one key look-up for every identity record of a batch.

    A person that gains identifiers needs only the events appended under
    those (its own events are in its profile already, or, for a person new
    at this record, there are none); a person an unlink names needs every
    event of what it has now."""
    named = list(touched(marks))
    identifiers = identity.identifiers(named)
    refold = _refolded(marks)
    persons = identity.persons([p for p in named if p in refold]) if refold else {}
    gained = _gained(marks)
    wanted = {
        person_id: history_keys(persons[person_id])
        if person_id in persons
        else gained.get(person_id, set())
        for person_id in identifiers
    }
    by_key = history.customer_histories(sorted(set().union(*wanted.values())))
    records = {
        (r.partition, r.offset): r for found in by_key.values() for r in without_control(found)
    }
    ordered = sorted(records.values(), key=lambda r: (r.partition, r.offset))
    decoded = codec.decode_many([r.payload for r in ordered])
    located = [
        (r, e) for r, e in zip(ordered, decoded, strict=True) if not isinstance(e, CodecError)
    ]
    opened = [e for _, e in located]
    if keys is not None:
        opened = unseal_events(opened, keys)
    by_record_key: dict[str, list[tuple[LogRecord, Touchpoint]]] = {}
    for (r, _), e in zip(located, opened, strict=True):
        by_record_key.setdefault(r.key, []).append((r, e))
    events: dict[str, list[tuple[int, int, str, Touchpoint]]] = {}
    for person_id, mine in identifiers.items():
        found = [pair for k in wanted[person_id] for pair in by_record_key.get(k, ())]
        found.sort(key=lambda pair: (pair[0].partition, pair[0].offset))
        events[person_id] = [
            (r.partition, r.offset, r.key, e) for r, e in found if _belongs(e, person_id, mine)
        ]
    return Prepared(identifiers, persons, events)


def _belongs(event: Touchpoint, person_id: str, mine: frozenset[Identifier]) -> bool:
    evidence = evidence_of(event)
    if evidence is None:
        return event.customer_id == person_id
    return evidence.primary in mine


def rederive(
    marks: Sequence[IdentityMark],
    prepared: Prepared,
    stored: Mapping[str, Profile],
    rules: RuleSet | None,
    models: Mapping[int, Model],
) -> Rederived:
    """The new profiles and armed timers of the persons ``marks`` touch,
    and the persons to drop. ``stored`` holds their current profiles.

    A person that gained identifiers, and has a profile, folds just the
    events appended under the keys the records moved in (``_gained``) that
    it had not folded yet (``Profile.folded_keys``) into that profile: the
    fold is by event time, so this is the fold of all its events, and its
    rule memory grows by what those events would have fired. A new person
    folds the events of its own key and of those. A person named by an
    unlink is folded again from every event of the identifiers it has
    now."""
    out = Rederived({}, {}, [])
    gained = _gained(marks)
    batch: list[tuple[int, Record]] = []
    starts: dict[str, Profile] = {}
    plans: list[tuple[str, Profile | None, Profile | None, set[str], bool]] = []
    for lane, (person_id, mark) in enumerate(touched(marks).items()):
        if person_id not in prepared.identifiers:
            out.dropped.append(person_id)
            continue
        before = stored.get(person_id)
        person = prepared.persons.get(person_id)
        if person is not None:
            # what the person kept is known only from the store: fold it all
            keys, start = history_keys(person) - {person_id}, None
            found = prepared.events.get(person_id, [])
        else:
            # the identifiers the records moved here, and what was folded before
            keys = gained.get(person_id, set()) | set(before.folded_keys if before else ())
            keys.discard(person_id)
            new = keys - set(before.folded_keys) if before is not None else keys
            start = None if before is None else before.copy()
            found = [x for x in prepared.events.get(person_id, []) if x[2] in new]
        events = _before(found, mark, person_id)
        # each person on a partition number of its own: its clock is its own
        batch.extend((-1 - lane, e) for e in events)
        if start is not None:
            starts[person_id] = start
        plans.append((person_id, before, start, keys, bool(events)))
    shadow = decide(batch, starts, [], {}, rules, _lane_models(models, marks)) if batch else None
    for person_id, before, begun, keys, folded in plans:
        if not folded and begun is not None:
            begun.folded_keys = sorted(keys)  # nothing new to fold: timers stay armed
            out.profiles[person_id] = begun
            continue
        refolded = shadow.profiles.get(person_id) if shadow is not None else None
        profile = refolded or begun or Profile(person_id)
        if begun is None and before is not None:
            profile.rule_state = union_memory(profile.rule_state, before.rule_state)
            profile.open_goals = before.open_goals
        profile.folded_keys = sorted(keys)
        out.profiles[person_id] = profile
        out.timers[person_id] = {} if shadow is None else shadow.timers.get(person_id, {})
    return out


def _lane_models(models: Mapping[int, Model], marks: Sequence[IdentityMark]) -> dict[int, Model]:
    """The model in effect on each person's real partition, on its lane."""
    out: dict[int, Model] = {}
    for lane, mark in enumerate(touched(marks).values()):
        model = models.get(mark.partition)
        if model is not None:
            out[-1 - lane] = model
    return out


def _refolded(marks: Sequence[IdentityMark]) -> set[str]:
    """Persons an unlink names (the unlinked one, and the re-derived sides):
    folded again from every event of what they have now."""
    return {
        m.key
        for m in marks
        if isinstance(m.record, IdentityUnlinked) or m.record.source == REDERIVED_SOURCE
    }


def _gained(marks: Sequence[IdentityMark]) -> dict[str, set[str]]:
    """Per person, the keys of the identifiers the records moved into it:
    each one's events were appended under its own value while it was a
    person of its own, or under the id of a person whose identifiers all
    move with it."""
    out: dict[str, set[str]] = {}
    for m in marks:
        record = m.record
        if (
            m.key == record.person_id
            and isinstance(record, IdentityLinked)
            and record.kind != EMAIL
        ):
            out.setdefault(m.key, set()).add(record.value)
    return out


def _before(
    found: list[tuple[int, int, str, Touchpoint]], mark: IdentityMark, person_id: str
) -> list[Touchpoint]:
    """The person's events on the log before ``mark`` (a repeated id once),
    keyed by the person, in event time."""
    seen: set[str] = set()
    events: list[Touchpoint] = []
    for partition, offset, _, event in found:
        if partition == mark.partition and offset >= mark.offset:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        events.append(event)
    events.sort(key=lambda e: e.occurred_at)
    return [e if e.customer_id == person_id else replace(e, customer_id=person_id) for e in events]
