"""``decide``: the one pure batch step, fold → rules → timers, for every caller.

The live pipeline, replay (the same pipeline on a new version), the Faust
agents (the same pipeline again) and the backtest harness all hand a batch to
``decide`` and write (or, in a backtest, keep) what it returns. Nothing else
encodes how the fold, the on-event rules and the timers interleave, so a live
run, a replay and a backtest cannot drift apart.

The order, per log record, as if records were processed one at a time:

1. the record's partition clock advances to ``max(clock, at)``, where ``at``
   is a touchpoint's ``occurred_at`` or a clock record's ``at``; it never goes
   back. Clocks are per partition because a partition is the unit one writer
   owns: a clock shared across partitions would depend on how far each worker
   had read, and a replay could not reproduce it;
2. the customer's timers due strictly before that clock fire, in due order,
   with ``fired_at`` = the due instant (a touchpoint at the very due instant
   still counts as activity and re-arms them);
3. the touchpoint is folded into the customer's profile (``evolve``), and the
   KPI observation is taken;
4. the on-event rules judge (before, after, event).

At the end of the batch every changed customer, and every customer whose
timers the caller found due (``due``), fires the timers due strictly before
its partition's final clock; then the armed timers of every changed customer
are listed for the caller to persist. Customers are independent (rules, caps
and consent are per customer), so processing them grouped rather than
interleaved gives the same result, and any cut of a history into batches gives
the same profiles, timers and triggers as one record at a time.

``decide`` reads no clock and does no I/O. It mutates the profiles it is given
(the caller's cache owns them; copying every profile per batch would cost more
than the fold) and returns which ones changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from events.model import ClockRecord, Micros, Touchpoint, TriggerEvent
from projections.evolve import apply
from projections.kpis import KpiBatch
from projections.profile import Profile
from rules.evaluate import evaluate
from rules.model import RuleSet
from rules.timers import due_timers, fire_due

Record = Touchpoint | ClockRecord
"""What a batch holds, per log position: a touchpoint or a clock advance."""


@dataclass(slots=True)
class Outcome:
    """Everything a batch decided; the caller commits it in one transaction."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    partition_of: dict[str, int] = field(default_factory=dict)
    timers: dict[str, dict[str, Micros]] = field(default_factory=dict)
    """customer -> {rule_id: due}, for every changed customer (empty: disarmed)."""
    triggers: list[TriggerEvent] = field(default_factory=list)
    kpis: KpiBatch = field(default_factory=KpiBatch)
    clocks: dict[int, Micros] = field(default_factory=dict)
    """partition -> clock, for every partition whose clock advanced."""
    events: int = 0


def advance(batch: Sequence[tuple[int, Record]], clocks: Mapping[int, Micros]) -> dict[int, Micros]:
    """The partition clocks after ``batch``: what a caller needs to know before
    ``decide``, to find (and load) the customers whose timers will be due."""
    out = dict(clocks)
    for partition, record in batch:
        at = record.occurred_at if type(record) is Touchpoint else record.at  # type: ignore[union-attr]
        if at > out.get(partition, at - 1):
            out[partition] = at
    return out


def decide(
    batch: Sequence[tuple[int, Record]],
    profiles: Mapping[str, Profile],
    due: Sequence[tuple[str, int]],
    clocks: Mapping[int, Micros],
    rules: RuleSet | None,
) -> Outcome:
    """Decide one batch of (partition, record) in log order.

    ``profiles`` holds the stored profile of every customer in the batch that
    has one and of every customer in ``due`` ((customer_id, partition) whose
    timers are due before the partition's final clock). ``clocks`` are the
    partition clocks before the batch.
    """
    out = Outcome()
    running = dict(clocks)
    # group by customer, remembering the partition clock at each record
    by_customer: dict[str, list[tuple[Touchpoint, Micros]]] = {}
    partition_of = out.partition_of
    for partition, record in batch:
        if type(record) is Touchpoint:
            at = record.occurred_at
            clock = running.get(partition)
            if clock is None or at > clock:
                running[partition] = clock = at
            bucket = by_customer.get(record.customer_id)
            if bucket is None:
                by_customer[record.customer_id] = [(record, clock)]
                partition_of[record.customer_id] = partition
            else:
                bucket.append((record, clock))
        else:
            at = record.at  # type: ignore[union-attr]
            if at > running.get(partition, at - 1):
                running[partition] = at
    out.clocks = {p: c for p, c in running.items() if clocks.get(p) != c}

    changed = out.profiles
    triggers = out.triggers
    kpis = out.kpis
    observe = kpis.observe
    judged = {} if rules is None else rules.by_type
    events_seen = 0
    for customer_id, events in by_customer.items():
        profile = profiles.get(customer_id) or Profile(customer_id)
        kpis.customer(profile)
        events_seen += len(events)
        changed[customer_id] = profile
        if rules is None:
            for event, _ in events:
                apply(profile, event)
                observe(profile, event)
            continue
        for event, clock in events:
            fired = fire_due(rules, profile, clock)
            if fired:
                triggers.extend(fired)
            if event.type not in judged:
                # no rule names this type: no "before" to keep, nothing to judge
                apply(profile, event)
                observe(profile, event)
                continue
            before = profile.copy() if profile.event_count else None
            apply(profile, event)
            observe(profile, event)
            fired = evaluate(rules, before, profile, event, clock)
            if fired:
                triggers.extend(fired)
    out.events = events_seen

    if rules is None:
        return out
    for customer_id, partition in due:
        if customer_id in changed:
            continue
        found = profiles.get(customer_id)
        if found is not None:
            changed[customer_id] = found
            partition_of[customer_id] = partition
    timers = out.timers
    for customer_id, profile in changed.items():
        limit = running.get(partition_of[customer_id])
        if limit is not None:
            fired = fire_due(rules, profile, limit)
            if fired:
                triggers.extend(fired)
        timers[customer_id] = dict(due_timers(rules, profile))
    return out
