"""``evaluate(rules, before, after, event, now) -> triggers``: the on-event half.

Pure apart from one deliberate effect: a fire is remembered in
``after.rule_state`` (cooldowns, once-keys, the frequency cap), so the memory
commits with the profile. Shadow runs and backtests call it the same way and
simply do not write the returned triggers.

Per candidate rule, the checks run cheapest first: consent, once-per-customer,
cooldown and cap (dict lookups), then the ``crosses``/``enters`` guards (plain
Python), then the condition (the native fast path of ``rules.native``, else CEL
with one context per event, built only when some rule gets that far), then the
once-per key.

Rules judge at the event's ``occurred_at``, not at ``now``: ``now`` is the
processor's clock, which depends on how the log was cut into batches, and a
replay must fire the same triggers as the live run. ``rules.decide`` still
passes its partition clock as ``now``; nothing here reads it.
"""

from __future__ import annotations

from events.model import Micros, Touchpoint, TriggerEvent
from projections.profile import Profile
from rules.controls import blocked, key_used, record
from rules.firing import Scope, make_trigger
from rules.model import RuleSet
from rules.timers import due_timers, fire_due, fire_timer

__all__ = ["RuleSet", "due_timers", "evaluate", "fire_due", "fire_timer"]


def evaluate(
    ruleset: RuleSet, before: Profile | None, after: Profile, event: Touchpoint, now: Micros
) -> list[TriggerEvent]:
    """The triggers ``event`` fires; ``before`` is None for a new customer."""
    rules = ruleset.by_type.get(event.type)
    if not rules:
        return []
    at = event.occurred_at
    prior = before if before is not None else Profile(after.customer_id)
    state = after.rule_state
    scope = Scope(ruleset.needs_by_type[event.type], prior, at, after, at, event)
    fired: list[TriggerEvent] = []
    for rule in rules:
        if rule.marketing and not after.subscribed:
            continue
        if blocked(rule, state, at, ruleset.cap) or not scope.holds(rule):
            continue
        key = scope.once_key(rule)
        if key == "" or (key is not None and key_used(rule, state, key)):
            continue
        record(rule, state, at, key, ruleset.cap)
        occurrence = f"event:{event.event_id}"
        fired.append(
            make_trigger(
                rule, after.customer_id, at, occurrence, (event.event_id,), scope.details(rule)
            )
        )
    return fired
