"""Backtest: what a rule file would have fired over history, without firing anything.

The run is ``rules.harness`` (the one definition of how the fold, the rules
and the timers interleave, which the processor's pipeline follows too), fed
the whole history in the order a live run meets it. Profiles are folded from
the first event so thresholds and once-per memory are right, but only
triggers fired in ``[start, end)`` are reported. Pure: the caller reads the
log and the live triggers and passes them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from events.model import DAY, Micros, ModelFitted, Touchpoint, TriggerConverted, TriggerEvent
from events.timefmt import format_iso
from projections.outcomes import report as outcomes_report
from projections.outcomes import tally
from rules.harness import Harness
from rules.model import RuleSet

_EPOCH = date(1970, 1, 1)


def week_of(t: Micros) -> str:
    """The Monday (UTC) of the ISO week holding ``t``."""
    day = _EPOCH + timedelta(days=t // DAY)
    return (day - timedelta(days=day.weekday())).isoformat()


@dataclass(frozen=True)
class Window:
    """``[start, end)``; None is open-ended."""

    start: Micros | None
    end: Micros | None

    def holds(self, t: Micros) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t < self.end)


def simulate(
    ruleset: RuleSet,
    events: Iterable[Touchpoint],
    end: Micros | None,
    clock: Micros | None = None,
    on_event: Callable[[int], None] | None = None,
    models: Sequence[ModelFitted] = (),
) -> Harness:
    """Feed every event before ``end`` (all when None), then advance the clock to
    ``end``, or without one to ``clock`` (the live processor's, so timers match
    the live run). The returned harness holds the triggers, their would-be
    conversions and the final clock.

    Each fitted model is adopted once the history passes its ``as_of``: a
    history merged across partitions has no single log position for it, and
    from ``as_of`` on it knows nothing the rules could not have known then.
    (The processor adopts it where the record sits on each partition, usually
    at about the same instant, since a fit runs as of the processor's clock.)"""
    harness = Harness(ruleset)
    pending = sorted(models, key=lambda m: (m.as_of, m.version))
    for n, event in enumerate(events, 1):
        if end is not None and event.occurred_at >= end:
            continue
        while pending and pending[0].as_of < event.occurred_at:
            harness.adopt(pending.pop(0))
        harness.feed(event)
        if on_event is not None and n % 10_000 == 0:
            on_event(n)
    until = end if end is not None else clock
    while pending and (until is None or pending[0].as_of < until):
        harness.adopt(pending.pop(0))
    if until is not None:
        harness.advance(until)
    return harness


def report(
    ruleset: RuleSet,
    triggers: Sequence[TriggerEvent],
    window: Window,
    live: Sequence[TriggerEvent],
    events_by_id: Callable[[Sequence[str]], dict[str, dict[str, Any]]],
    trigger_json: Callable[[TriggerEvent], dict[str, Any]],
    sample_size: int = 5,
) -> list[dict[str, Any]]:
    """Per rule of ``ruleset``: triggers per week, customers, a sample with the
    events that caused each, and the overlap with the live triggers of the
    same window (customers also hit live, per live rule, and identical ids)."""
    in_window = [t for t in triggers if window.holds(t.fired_at)]
    live_in = [t for t in live if window.holds(t.fired_at)]
    live_ids = {t.trigger_id for t in live_in}
    live_customers: dict[str, set[str]] = defaultdict(set)
    for t in live_in:
        live_customers[t.rule_id].add(t.customer_id)
    any_live = set().union(*live_customers.values()) if live_customers else set()
    by_rule: dict[str, list[TriggerEvent]] = defaultdict(list)
    for t in in_window:
        by_rule[t.rule_id].append(t)
    samples = {rule.id: by_rule[rule.id][:sample_size] for rule in ruleset.rules}
    wanted = sorted({e for ts in samples.values() for t in ts for e in t.caused_by})
    found = events_by_id(wanted)
    out: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        fired = by_rule[rule.id]
        customers = {t.customer_id for t in fired}
        per_week: dict[str, int] = defaultdict(int)
        for t in fired:
            per_week[week_of(t.fired_at)] += 1
        out.append(
            {
                "rule_id": rule.id,
                "version": rule.version,
                "kind": rule.kind,
                "audience": rule.audience,
                "triggers": len(fired),
                "customers": len(customers),
                "per_week": dict(sorted(per_week.items())),
                "sample": [
                    {
                        **trigger_json(t),
                        "caused_by_events": [found[e] for e in t.caused_by if e in found],
                    }
                    for t in samples[rule.id]
                ],
                "overlap": {
                    "customers_also_hit_live": len(customers & any_live),
                    "by_live_rule": {
                        r: len(customers & c)
                        for r, c in sorted(live_customers.items())
                        if customers & c
                    },
                    "same_trigger_ids_as_live": sum(1 for t in fired if t.trigger_id in live_ids),
                },
            }
        )
    return out


def outcomes(
    ruleset: RuleSet,
    triggers: Sequence[TriggerEvent],
    conversions: Sequence[TriggerConverted],
    window: Window,
) -> list[dict[str, Any]]:
    """``engage outcomes`` for the would-be triggers fired in the window (and
    their conversions, even after it), per rule and arm, with the uplift."""
    fired = [t for t in triggers if window.holds(t.fired_at)]
    ids = {t.trigger_id for t in fired}
    stats = tally(fired, [c for c in conversions if c.trigger_id in ids])
    return outcomes_report(stats, [r.id for r in ruleset.rules])


def window_json(window: Window, clock: Micros | None) -> dict[str, Any]:
    return {
        "from": None if window.start is None else format_iso(window.start),
        "to": None if window.end is None else format_iso(window.end),
        "clock": None if clock is None else format_iso(clock),
    }
