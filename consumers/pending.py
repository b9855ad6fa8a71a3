"""What a batch has decided but not yet written: the outcomes of its
segments (a batch is cut at identity and erasure records), gathered so the
batch writes each table once, however many times it was cut.

Writing per segment cost a round of profile, timer, outbox and KPI writes
per identity record; a batch with a few hundred merges spent most of its
time there. Gathered, a cut costs one more ``decide`` and nothing more in
the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from events.model import Micros, TriggerConverted, TriggerEvent
from projections.kpis import KpiDelta
from projections.ports import UnitOfWork
from projections.predictions import Model
from projections.profile import Profile
from rules.arms import CONTROL

Pair = tuple[TriggerEvent, bytes]


@dataclass(slots=True)
class Pending:
    profiles: dict[str, Profile] = field(default_factory=dict)
    timers: dict[str, tuple[int, dict[str, Micros]]] = field(default_factory=dict)
    """customer -> (partition, {rule_id: due}); empty: disarmed."""
    dropped: set[str] = field(default_factory=set)
    """Profiles to delete (absorbed persons), unless saved again later."""
    triggers: list[Pair] = field(default_factory=list)
    conversions: list[TriggerConverted] = field(default_factory=list)
    kpis: KpiDelta = field(default_factory=KpiDelta)
    clocks: dict[int, Micros] = field(default_factory=dict)
    models: dict[int, Model] = field(default_factory=dict)

    def keep(self, profiles: dict[str, Profile]) -> None:
        self.profiles.update(profiles)
        self.dropped.difference_update(profiles)

    def drop(self, customer_ids: list[str]) -> None:
        for customer_id in customer_ids:
            self.profiles.pop(customer_id, None)
            self.timers[customer_id] = (0, {})
        self.dropped.update(customer_ids)

    def write(
        self,
        tx: UnitOfWork,
        consumer: str,
        stream: str,
        *,
        with_timers: bool,
        publish_to: int | None,
    ) -> None:
        """Steps 2–5 of the commit order (``consumers.pipeline``): profiles and
        timers, outbox, conversions, KPIs, clocks and models; then empty."""
        if self.dropped:
            tx.forget_profiles(sorted(self.dropped))
        tx.save_profiles(list(self.profiles.values()))
        if with_timers and self.timers:
            rows = [
                (customer_id, rule_id, due, partition)
                for customer_id, (partition, armed) in self.timers.items()
                for rule_id, due in armed.items()
            ]
            tx.save_timers(list(self.timers), rows)
        pairs = self.triggers
        if pairs:
            held = [p for p in pairs if p[0].arm == CONTROL]
            if held:
                # the control arm is recorded, never delivered: marked published,
                # so the relay never moves it, and kept off the triggers stream
                pairs = [p for p in pairs if p[0].arm != CONTROL]
                tx.add_outbox(held, published=True)
            tx.add_outbox(pairs, published=publish_to is not None)
            if publish_to is not None:
                tx.publish_triggers(pairs, publish_to)
        if self.conversions:
            tx.save_conversions(self.conversions)
        tx.save_kpis(self.kpis)
        if self.clocks:
            tx.save_partition_clocks(consumer, stream, self.clocks)
            tx.save_clock(consumer, max(self.clocks.values()))
        if self.models:
            tx.save_partition_models(consumer, stream, self.models)
        # a fresh start for what the batch decides after an erasure cut
        self.profiles, self.timers, self.dropped = {}, {}, set()
        self.triggers, self.conversions, self.kpis = [], [], KpiDelta()
        self.clocks, self.models = {}, {}
