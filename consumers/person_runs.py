"""A batch with identity records, cut per person instead of as a whole.

An identity record changes only the persons it names (``touched``), so only
their events need to stop at it: everyone else is decided in one ``decide``
over the whole batch, as without identity. Each touched person's events are
cut into **runs** at its own identity records, and each run is decided on
its own, with the partition clock each event met in the batch rebuilt by a
clock record before it (``decide`` reads the clock from the records it is
given), and a last clock record at the run's end: the clock at the identity
record, or the batch's final clock. So a touched person meets exactly the
clocks it would have met had the batch been cut at every identity record,
at the cost of a few small ``decide`` calls per merge instead of one over
the whole batch per identity record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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
    records: list[tuple[int, Record]] = field(default_factory=list)
    marks: list[IdentityMark] = field(default_factory=list)
    """The identity records right after the run (none for the last)."""


def person_runs(
    decoded: Sequence[tuple[int, Decoded]],
    rekey: Mapping[str, str],
    before: Mapping[int, Micros],
) -> tuple[list[tuple[int, Record]], dict[str, list[Run]]]:
    """One pass over a batch (touchpoints, clock and identity records only):
    what everyone else is decided on (the touched persons' events as clock
    stand-ins), and every touched person's runs, in log order. ``rekey``:
    event_id -> the person it was appended under (``consumers.decoding``)."""
    running = dict(before)
    open_runs: dict[str, Run] = {}
    out: dict[str, list[Run]] = {item.key: [] for _, item in decoded if type(item) is IdentityMark}
    others: list[tuple[int, Record]] = []
    for partition, item in decoded:
        kind = type(item)
        if kind is Touchpoint:
            event: Touchpoint = item  # type: ignore[assignment]
            if rekey:
                key = rekey.get(event.event_id)
                if key is not None:
                    event = replace(event, customer_id=key)
            prev = running.get(partition)
            if event.customer_id in out:
                run = open_runs.get(event.customer_id)
                if run is None:
                    run = open_runs[event.customer_id] = Run(partition, prev)
                if prev is not None:
                    run.records.append((partition, ClockRecord(partition, prev, "batch")))
                run.records.append((partition, event))
                others.append((partition, ClockRecord(partition, event.occurred_at, "batch")))
            else:
                others.append((partition, event))
            if prev is None or event.occurred_at > prev:
                running[partition] = event.occurred_at
        elif kind is ClockRecord:
            at = item.at  # type: ignore[union-attr]
            others.append((partition, item))  # type: ignore[arg-type]
            if at > running.get(partition, at - 1):
                running[partition] = at
        elif kind is IdentityMark:
            mark: IdentityMark = item  # type: ignore[assignment]
            runs = out[mark.key]
            run = open_runs.pop(mark.key, None)
            if run is None and runs:
                runs[-1].marks.append(mark)  # nothing of theirs since the last one
                continue
            if run is None:
                run = Run(partition, running.get(partition))
            _close(run, running.get(partition))
            run.marks.append(mark)
            runs.append(run)
    for person, runs in out.items():
        last = open_runs.pop(person, None)
        if last is None:
            partition = runs[-1].partition if runs else 0
            last = Run(partition, running.get(partition))
        _close(last, running.get(last.partition))
        runs.append(last)
    return others, out


def _close(run: Run, clock: Micros | None) -> None:
    if clock is not None:
        run.records.append((run.partition, ClockRecord(run.partition, clock, "batch")))


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
    for index, (person, runs) in enumerate(runs_of.items()):
        lane_partition = -1 - index
        for k, run in enumerate(runs):
            if k == len(lanes_):
                lanes_.append(Lane())
            lane = lanes_[k]
            lane.persons.append(person)
            lane.due.append((person, lane_partition))
            lane.real[person] = run.partition
            if run.start is not None:
                lane.start[lane_partition] = run.start
            model = models.get(run.partition)
            if model is not None:
                lane.models[lane_partition] = model
            for _, record in run.records:
                if type(record) is ClockRecord:
                    record = ClockRecord(lane_partition, record.at, record.source)
                lane.records.append((lane_partition, record))
            lane.marks.extend(run.marks)
    return lanes_
