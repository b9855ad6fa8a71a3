"""The backtest harness: ``decide`` over a history held in memory.

Tests, ``engage backtest`` and the processor's pipeline must agree on the
order of fold, rules and timers, or a replay would fire different triggers
than the live run; ``rules.decide`` is that order, and this harness only
feeds it one event at a time, with one clock (a history in memory has no
partitions) and a ``TimerQueue`` in place of the pipeline's.

``advance(until)`` moves the clock alone, for ``--now`` or the end of a
backtest. Timers due exactly at the clock wait: a touchpoint at that very
instant still counts as activity and re-arms them.

The harness keeps profiles in memory and returns triggers without writing them
anywhere, so it is also the shadow/backtest runner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from events.model import Micros, ModelFitted, Touchpoint, TriggerConverted, TriggerEvent
from projections.predictions import Model
from projections.profile import Profile
from rules.decide import Record, decide
from rules.model import RuleSet
from rules.timer_queue import TimerQueue

_ONE: int = 0
"""The harness's one partition."""


@dataclass
class Harness:
    ruleset: RuleSet
    profiles: dict[str, Profile] = field(default_factory=dict)
    triggers: list[TriggerEvent] = field(default_factory=list)
    conversions: list[TriggerConverted] = field(default_factory=list)
    """The would-be conversions of the triggers fired (``rules.goals``)."""
    clock: Micros | None = None
    queue: TimerQueue = field(default_factory=TimerQueue)
    model: Model | None = None
    """The fitted model in effect (``adopt``)."""

    def feed(self, event: Touchpoint) -> list[TriggerEvent]:
        """Process one event; returns the triggers it caused (its customer's
        due timers first) and any other customer's timers the clock passed."""
        clock = event.occurred_at if self.clock is None else max(self.clock, event.occurred_at)
        return self._decide([(_ONE, event)], clock)

    def advance(self, until: Micros) -> list[TriggerEvent]:
        """Move the clock to ``until`` (if later) and fire the timers it passes."""
        clock = until if self.clock is None else max(self.clock, until)
        return self._decide([], clock)

    def adopt(self, fitted: ModelFitted) -> list[TriggerEvent]:
        """Put a fitted model in effect from here on, as a ``model_fitted``
        record on the log does; every customer with repeat purchases re-arms."""
        rearm = [
            cid
            for cid, p in self.profiles.items()
            if p.purchase_days is not None and len(p.purchase_days) >= 2
        ]
        if self.clock is None:  # nothing yet: nothing to re-arm, no clock to move
            self.model = decide([(_ONE, fitted)], {}, [], {}, self.ruleset).models[_ONE]
            return []
        return self._decide([(_ONE, fitted)], self.clock, rearm)

    def run(self, events: Iterable[Touchpoint], until: Micros | None = None) -> list[TriggerEvent]:
        """Feed every event, then advance to ``until``; returns all triggers fired."""
        start = len(self.triggers)
        for event in events:
            self.feed(event)
        if until is not None:
            self.advance(until)
        return self.triggers[start:]

    @property
    def armed(self) -> _Armed:
        """``armed[customer_id]``: that customer's armed timers, rule_id -> due."""
        return _Armed(self.queue)

    def _decide(
        self, batch: list[tuple[int, Record]], clock: Micros, rearm: list[str] | None = None
    ) -> list[TriggerEvent]:
        due = [(c, _ONE) for c in self.queue.pop_due(_ONE, clock)]
        if rearm:
            popped = {c for c, _ in due}
            due.extend((c, _ONE) for c in rearm if c not in popped)
        before = {} if self.clock is None else {_ONE: self.clock}
        if not batch:
            before = {_ONE: clock}
        models = {} if self.model is None else {_ONE: self.model}
        outcome = decide(batch, self.profiles, due, before, self.ruleset, models)
        self.model = outcome.models.get(_ONE, self.model)
        self.clock = clock
        self.profiles.update(outcome.profiles)
        for customer_id, armed in outcome.timers.items():
            self.queue.arm(customer_id, _ONE, armed)
        self.triggers.extend(outcome.triggers)
        self.conversions.extend(outcome.conversions)
        return outcome.triggers


@dataclass(frozen=True)
class _Armed:
    queue: TimerQueue

    def __getitem__(self, customer_id: str) -> dict[str, Micros]:
        return self.queue.armed(customer_id)


def replay(ruleset: RuleSet, events: Iterable[Touchpoint], until: Micros | None = None) -> Harness:
    """Run a whole history through a fresh harness (tests, backtests)."""
    harness = Harness(ruleset)
    harness.run(events, until)
    return harness
