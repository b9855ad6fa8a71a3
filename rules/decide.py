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
4. the on-event rules judge (before, after, event);
5. if the event is of a goal type, it converts the person's open goals it
   meets (``rules.goals``), then the triggers it fired open theirs: an event
   never converts a trigger it caused. Timer triggers open theirs as they fire.

A ``model_fitted`` record (``events.control``) does not move the clock: at its
position, the partition's customers fire their timers due strictly before the
clock under the model in effect until then, and from then on use the new one
(``projections.predictions.Model``, adopted at that clock). Timers solved from
the model (``due: p_alive < 0.3``) re-arm with it, so the caller lists in
``due`` every customer of the partition with repeat purchases.

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

from events.model import (
    ClockRecord,
    Micros,
    ModelFitted,
    Touchpoint,
    TriggerConverted,
    TriggerEvent,
)
from projections.evolve import apply
from projections.kpis import KpiBatch
from projections.predictions import Model, ModelParams
from projections.profile import Profile
from rules.evaluate import evaluate
from rules.goals import convert, open_goals
from rules.model import RuleSet
from rules.timers import due_timers, fire_due

Record = Touchpoint | ClockRecord | ModelFitted
"""What a batch holds, per log position: a touchpoint, a clock advance or a fitted model."""


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
    models: dict[int, Model] = field(default_factory=dict)
    """partition -> the model in effect after the batch, where one was adopted."""
    conversions: list[TriggerConverted] = field(default_factory=list)
    """Triggers whose goal an event of the batch reached (``rules.goals``)."""
    events: int = 0


def model_of(record: ModelFitted, adopted_at: Micros | None) -> Model:
    """The model a ``model_fitted`` record puts in effect (the caller checked
    the parameters when decoding: ``ModelParams.from_json`` raised there)."""
    params = ModelParams.from_json({"time_unit": record.time_unit, **record.params})
    return Model(record.version, params, adopted_at)


def advance(batch: Sequence[tuple[int, Record]], clocks: Mapping[int, Micros]) -> dict[int, Micros]:
    """The partition clocks after ``batch``: what a caller needs to know before
    ``decide``, to find (and load) the customers whose timers will be due."""
    out = dict(clocks)
    for partition, record in batch:
        kind = type(record)
        if kind is Touchpoint:
            at = record.occurred_at  # type: ignore[union-attr]
        elif kind is ClockRecord:
            at = record.at  # type: ignore[union-attr]
        else:
            continue
        if at > out.get(partition, at - 1):
            out[partition] = at
    return out


def decide(
    batch: Sequence[tuple[int, Record]],
    profiles: Mapping[str, Profile],
    due: Sequence[tuple[str, int]],
    clocks: Mapping[int, Micros],
    rules: RuleSet | None,
    models: Mapping[int, Model] | None = None,
    until: Mapping[str, Micros] | None = None,
) -> Outcome:
    """Decide one batch of (partition, record) in log order.

    ``profiles`` holds the stored profile of every customer in the batch that
    has one and of every customer in ``due`` ((customer_id, partition) whose
    timers are due before the partition's final clock, or who must re-arm
    for a model adopted in the batch). ``clocks`` are the partition clocks
    and ``models`` the models in effect before the batch. ``until``: customers
    whose part of the batch ends earlier than their partition's (a person
    whose identity record comes before the end, ``consumers.person_runs``):
    their timers fire up to that clock, not the partition's final one.
    """
    out = Outcome()
    running = dict(clocks)
    before_models: Mapping[int, Model] = models or {}
    # the models adopted in this batch, per partition, in log order; each
    # touchpoint remembers how many of its partition's came before it
    adopted: dict[int, list[Model]] = {}
    by_customer: dict[str, list[tuple[Touchpoint, Micros, int]]] = {}
    partition_of = out.partition_of
    for partition, record in batch:
        kind = type(record)
        if kind is Touchpoint:
            at = record.occurred_at  # type: ignore[union-attr]
            clock = running.get(partition)
            if clock is None or at > clock:
                running[partition] = clock = at
            chain = adopted.get(partition)
            entry = (record, clock, 0 if chain is None else len(chain))
            customer_id = record.customer_id  # type: ignore[union-attr]
            bucket = by_customer.get(customer_id)
            if bucket is None:
                by_customer[customer_id] = [entry]  # type: ignore[list-item]
                partition_of[customer_id] = partition
            else:
                bucket.append(entry)  # type: ignore[arg-type]
        elif kind is ClockRecord:
            at = record.at  # type: ignore[union-attr]
            if at > running.get(partition, at - 1):
                running[partition] = at
        else:
            fitted = model_of(record, running.get(partition))  # type: ignore[arg-type]
            adopted.setdefault(partition, []).append(fitted)
    out.clocks = {p: c for p, c in running.items() if clocks.get(p) != c}
    out.models = {p: chain[-1] for p, chain in adopted.items()}

    changed = out.profiles
    triggers = out.triggers
    kpis = out.kpis
    observe = kpis.observe
    judged = {} if rules is None else rules.by_type
    goal_types = frozenset[str]() if rules is None else rules.goal_types
    conversions = out.conversions
    events_seen = 0
    timers = out.timers
    for customer_id, events in by_customer.items():
        profile = profiles.get(customer_id) or Profile(customer_id)
        kpis.customer(profile)
        events_seen += len(events)
        changed[customer_id] = profile
        if rules is None:
            for event, _, _ in events:
                apply(profile, event)
                observe(profile, event)
            continue
        partition = partition_of[customer_id]
        chain = adopted.get(partition)
        model = before_models.get(partition)
        step = 0
        for event, clock, mark in events:
            if mark != step and chain is not None:
                model = _adopt(rules, profile, model, chain, step, mark, triggers)
                step = mark
            fired = fire_due(rules, profile, clock, model)
            if fired:
                _fired(rules, profile, fired, triggers)
            if event.type not in judged:
                # no rule names this type: no "before" to keep, nothing to judge
                apply(profile, event)
                observe(profile, event)
                if event.type in goal_types and profile.open_goals:
                    conversions.extend(convert(rules, profile, event))
                continue
            before = profile.copy() if profile.event_count else None
            apply(profile, event)
            observe(profile, event)
            fired = evaluate(rules, before, profile, event, clock)
            if event.type in goal_types and profile.open_goals:
                # before this event's own triggers open: it never converts them
                conversions.extend(convert(rules, profile, event))
            if fired:
                _fired(rules, profile, fired, triggers)
        end = (
            running.get(partition)
            if until is None
            else until.get(customer_id, running.get(partition))
        )
        _finish(rules, profile, model, chain, step, end, triggers, timers)
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
            _finish(
                rules,
                found,
                before_models.get(partition),
                adopted.get(partition),
                0,
                running.get(partition)
                if until is None
                else until.get(customer_id, running.get(partition)),
                triggers,
                timers,
            )
    return out


def _fired(
    rules: RuleSet, profile: Profile, fired: list[TriggerEvent], triggers: list[TriggerEvent]
) -> None:
    """Keep what fired, and open the goals of those whose rule has one."""
    triggers.extend(fired)
    if rules.goal_types:
        open_goals(rules, profile, fired)


def _adopt(
    rules: RuleSet,
    profile: Profile,
    model: Model | None,
    chain: list[Model],
    start: int,
    end: int,
    triggers: list[TriggerEvent],
) -> Model | None:
    """Pass the model adoptions ``chain[start:end]``: at each, fire the timers
    due before its clock under the model in effect until then, then switch."""
    for new in chain[start:end]:
        if new.adopted_at is not None:
            fired = fire_due(rules, profile, new.adopted_at, model)
            if fired:
                _fired(rules, profile, fired, triggers)
        model = new
    return model


def _finish(
    rules: RuleSet,
    profile: Profile,
    model: Model | None,
    chain: list[Model] | None,
    step: int,
    limit: Micros | None,
    triggers: list[TriggerEvent],
    timers: dict[str, dict[str, Micros]],
) -> None:
    """End of the batch for one customer: the adoptions after its last event,
    the timers due before its partition's final clock, and its armed timers."""
    if chain is not None and step < len(chain):
        model = _adopt(rules, profile, model, chain, step, len(chain), triggers)
    if limit is not None:
        fired = fire_due(rules, profile, limit, model)
        if fired:
            _fired(rules, profile, fired, triggers)
    timers[profile.customer_id] = dict(due_timers(rules, profile, model))
