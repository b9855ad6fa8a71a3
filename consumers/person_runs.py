"""A batch with identity records, cut per person instead of as a whole.

An identity record changes only the persons it names, so only their events
need to stop at it. Everything up to each named person's first identity
record is decided in one ``decide`` over the whole batch, as without
identity, the named persons' part ending at the clock of that record
(``decide``'s ``until``). Their events after it are cut into **runs** at
their later identity records, and the k-th run of every named person is
decided in one more call, each person on a lane partition of its own, with
the partition clock each event met in the batch rebuilt by a clock record
before it where the event is late (``decide`` reads the clock from the
records it is given; an event no earlier than the clock moves it there by
itself) and a last clock record at the run's end: the clock at the next
identity record, or the batch's final clock. Where the named persons' events
moved their partition's clock, the big call gets a clock record in their
place, again only before a late record of that partition and at the end. So
every person meets exactly the clocks it would have met had the batch been
cut at every identity record (``tests/unit/test_identity_pipeline_properties.py``),
at the cost of a few small ``decide`` calls per batch instead of one over the
whole batch per identity record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from consumers.decoding import Decoded
from consumers.identity_changes import IdentityMark
from events.model import ClockRecord, Micros, Touchpoint
from projections.predictions import Model
from rules.decide import Record


@dataclass(slots=True)
class Run:
    partition: int
    start: Micros | None
    """The partition clock before the run."""
    lane: int = -1
    """The partition number its records carry (``Lane``)."""
    records: list[tuple[int, Record]] = field(default_factory=list)
    marks: list[IdentityMark] = field(default_factory=list)
    """The identity records right after the run (none for the last)."""
    last: Micros | None = None
    """The clock its records have reached."""


@dataclass(slots=True)
class Split:
    """A batch split at its identity records (``person_runs``)."""

    others: list[tuple[int, Record]]
    """The one big call: every event but the named persons' after their first
    identity record (those as clock stand-ins, where they move the clock)."""
    until: dict[str, Micros]
    """Named person -> the clock at its first identity record: its part of
    the big call ends there (``decide``'s ``until``)."""
    first: list[IdentityMark]
    """The identity records the big call stops at (each person's first run)."""
    runs: dict[str, list[Run]]
    """Each named person's runs after its first identity records, on its lane."""


def person_runs(
    decoded: Sequence[tuple[int, Decoded]],
    before: Mapping[int, Micros],
    marks: Sequence[IdentityMark],
) -> Split:
    """One pass over a batch (touchpoints, clock and identity records only;
    events already keyed by their person: ``consumers.decoding.rekey``).
    ``marks``: the batch's identity records."""
    running = dict(before)
    open_runs: dict[str, Run] = {}
    out: dict[str, list[Run]] = {m.key: [] for m in marks}
    lane_of = {person: -1 - i for i, person in enumerate(out)}
    until: dict[str, Micros] = {}
    first: dict[str, list[IdentityMark]] = {}
    others: list[tuple[int, Record]] = []
    add = others.append
    clock_at = running.get
    # stand-ins not yet added, per partition (the latest: they only rise): the
    # next record of the partition in ``others`` meets the same clock without
    # one when it is no earlier, so a stand-in goes in only before an earlier
    # (late) record, and at the end
    owed: dict[int, Micros] = {}
    for pair in decoded:
        partition, item = pair
        kind = type(item)
        if kind is Touchpoint:
            event: Touchpoint = item  # type: ignore[assignment]
            person = event.customer_id
            at = event.occurred_at
            prev = clock_at(partition)
            if person not in first:  # the common case: decided with everyone else
                if owed:
                    _settle(owed, partition, at, add)
                add(pair)  # type: ignore[arg-type]
                if prev is None or at > prev:
                    running[partition] = at
                continue
            run = open_runs.get(person)
            if run is None:
                run = open_runs[person] = Run(partition, prev, lane_of[person], last=prev)
            lane = run.lane
            if prev is not None and prev != run.last and at < prev:
                # a late event meets the clock the others moved it to; one
                # no earlier moves its lane's clock there by itself
                run.records.append((lane, ClockRecord(lane, prev, "batch")))
            run.records.append((lane, event))
            if prev is None or at > prev:
                owed[partition] = at
                running[partition] = prev = at
            run.last = prev
        elif kind is ClockRecord:
            at = item.at  # type: ignore[union-attr]
            if owed:
                _settle(owed, partition, at, add)
            add(pair)  # type: ignore[arg-type]
            if at > running.get(partition, at - 1):
                running[partition] = at
        elif kind is IdentityMark:
            mark: IdentityMark = item  # type: ignore[assignment]
            marks_so_far = first.get(mark.key)
            if marks_so_far is None:  # its first: the big call stops here for it
                first[mark.key] = [mark]
                here = running.get(partition)
                if here is not None:
                    until[mark.key] = here
                continue
            runs = out[mark.key]
            run = open_runs.pop(mark.key, None)
            if run is None:  # nothing of theirs since the last one
                (runs[-1].marks if runs else marks_so_far).append(mark)
                continue
            _close(run, running.get(partition))
            run.marks.append(mark)
            runs.append(run)
    others.extend((p, ClockRecord(p, at, "batch")) for p, at in owed.items())
    for person, runs in out.items():
        last = open_runs.pop(person, None)
        if last is None:
            partition = runs[-1].partition if runs else first[person][0].partition
            here = running.get(partition)
            last = Run(partition, here, lane_of[person], last=here)
        _close(last, running.get(last.partition))
        runs.append(last)
    return Split(others, until, [m for taken in first.values() for m in taken], out)


def _settle(
    owed: dict[int, Micros],
    partition: int,
    at: Micros,
    add: Callable[[tuple[int, Record]], None],
) -> None:
    """Before a record of ``partition`` at ``at``: the stand-in it is owed,
    if the record is earlier (else the record moves the clock as far)."""
    clock = owed.pop(partition, None)
    if clock is not None and at < clock:
        add((partition, ClockRecord(partition, clock, "batch")))


def _close(run: Run, clock: Micros | None) -> None:
    """The run ends at the clock of where it stops: decide fires the
    person's timers due before it."""
    if clock is not None:
        run.records.append((run.lane, ClockRecord(run.lane, clock, "batch")))


@dataclass(slots=True)
class Lane:
    """The k-th run of every touched person that has one, as one batch for
    ``decide``: each person on a partition number of its own (negative, so
    never a real one), so each keeps its own clocks; ``real`` maps a person
    back to its partition."""

    records: list[tuple[int, Record]] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    due: list[tuple[str, int]] = field(default_factory=list)
    start: dict[int, Micros] = field(default_factory=dict)
    models: dict[int, Model] = field(default_factory=dict)
    real: dict[str, int] = field(default_factory=dict)
    marks: list[IdentityMark] = field(default_factory=list)


def lanes(runs_of: Mapping[str, list[Run]], models: Mapping[int, Model]) -> list[Lane]:
    """One ``decide`` per run index instead of one per run: a batch with
    hundreds of merges then costs a few calls, not hundreds."""
    lanes_: list[Lane] = []
    for person, runs in runs_of.items():
        for k, run in enumerate(runs):
            if k == len(lanes_):
                lanes_.append(Lane())
            lane = lanes_[k]
            lane.persons.append(person)
            lane.due.append((person, run.lane))
            lane.real[person] = run.partition
            if run.start is not None:
                lane.start[run.lane] = run.start
            model = models.get(run.partition)
            if model is not None:
                lane.models[run.lane] = model
            lane.records.extend(run.records)
            lane.marks.extend(run.marks)
    return lanes_
