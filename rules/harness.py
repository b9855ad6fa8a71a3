"""The one place that defines how the fold, the rules and the timers interleave.

Tests, ``engage backtest`` and the processor's pipeline must agree on the order,
or a replay would fire different triggers than the live run. For each event,
in log order:

1. the clock advances to ``max(clock, event.occurred_at)`` (it never goes back);
2. every armed timer, of any customer, due strictly before the clock fires, in
   (due, customer, rule) order, with ``fired_at`` = its due instant;
3. the event is folded into its customer's profile (``evolve``);
4. the on-event rules are evaluated on (before, after, event);
5. that customer's timers are re-armed from the new profile (``due_timers``).

``advance(until)`` is step 2 alone, for ``--now`` or the end of a backtest.
Timers due exactly at the clock wait: a touchpoint at that very instant still
counts as activity and re-arms them.

The harness keeps profiles in memory and returns triggers without writing them
anywhere, so it is also the shadow/backtest runner.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.model import Micros, Touchpoint, TriggerEvent
from projections.evolve import evolve
from projections.profile import Profile
from rules.evaluate import evaluate
from rules.model import RuleSet
from rules.timers import due_timers, fire_timer


@dataclass
class Harness:
    ruleset: RuleSet
    profiles: dict[str, Profile] = field(default_factory=dict)
    triggers: list[TriggerEvent] = field(default_factory=list)
    clock: Micros | None = None
    # customer -> {rule_id: due}; the heap holds (due, customer, rule) and may
    # hold stale entries, skipped when they no longer match ``armed``
    armed: dict[str, dict[str, Micros]] = field(default_factory=dict)
    _heap: list[tuple[Micros, str, str]] = field(default_factory=list)

    def feed(self, event: Touchpoint) -> list[TriggerEvent]:
        """Process one event (steps 1–5); returns the triggers it caused, timers first."""
        t = event.occurred_at
        self.clock = t if self.clock is None else max(self.clock, t)
        fired = self._fire_until(self.clock)
        before = self.profiles.get(event.customer_id)
        after = evolve(before, event)
        self.profiles[event.customer_id] = after
        on_event = evaluate(self.ruleset, before, after, event, self.clock)
        self.triggers.extend(on_event)
        self._rearm(after)
        return fired + on_event

    def advance(self, until: Micros) -> list[TriggerEvent]:
        """Move the clock to ``until`` (if later) and fire the timers it passes."""
        self.clock = until if self.clock is None else max(self.clock, until)
        return self._fire_until(self.clock)

    def run(self, events: Iterable[Touchpoint], until: Micros | None = None) -> list[TriggerEvent]:
        """Feed every event, then advance to ``until``; returns all triggers fired."""
        start = len(self.triggers)
        for event in events:
            self.feed(event)
        if until is not None:
            self.advance(until)
        return self.triggers[start:]

    def _fire_until(self, clock: Micros) -> list[TriggerEvent]:
        fired: list[TriggerEvent] = []
        heap = self._heap
        while heap and heap[0][0] < clock:
            due, customer_id, rule_id = heapq.heappop(heap)
            if self.armed.get(customer_id, {}).get(rule_id) != due:
                continue
            profile = self.profiles[customer_id].copy()
            new = fire_timer(self.ruleset, rule_id, profile, due)
            self.profiles[customer_id] = profile
            fired.extend(new)
            self._rearm(profile)
        self.triggers.extend(fired)
        return fired

    def _rearm(self, profile: Profile) -> None:
        timers = dict(due_timers(self.ruleset, profile))
        old = self.armed.get(profile.customer_id, {})
        self.armed[profile.customer_id] = timers
        for rule_id, due in timers.items():
            if old.get(rule_id) != due:
                heapq.heappush(self._heap, (due, profile.customer_id, rule_id))


def replay(ruleset: RuleSet, events: Iterable[Touchpoint], until: Micros | None = None) -> Harness:
    """Run a whole history through a fresh harness (tests, backtests)."""
    harness = Harness(ruleset)
    harness.run(events, until)
    return harness
