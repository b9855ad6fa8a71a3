"""Goals: did a trigger work? Open goals and the conversions they become.

A trigger of a rule with a ``goal`` opens a goal for its person: the trigger
id, rule, arm, when it fired and when its window closes. The open goals live
in the profile (``Profile.open_goals``), so they commit with it in the batch
transaction and a replay rebuilds them from the same events. The first goal
event of the person inside a window converts that trigger, and one goal event
converts every trigger whose window is open and whose goal it meets.

Only the event sequence of one person decides: a goal event converts a trigger
that fired strictly before it (the event that caused a trigger never converts
it), up to and including the window's end; an entry is dropped once an event
of the person is later than its window's end. No clock is read, so any cut of
a history into batches gives the same conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from events.model import Touchpoint, TriggerConverted, TriggerEvent
from projections.profile import Profile
from rules.firing import Scope
from rules.model import Goal, RuleSet


def open_goals(ruleset: RuleSet, profile: Profile, fired: Sequence[TriggerEvent]) -> None:
    """Open a goal for each trigger in ``fired`` whose rule has one."""
    by_id = ruleset.by_id
    for trigger in fired:
        rule = by_id.get(trigger.rule_id)
        if rule is None or rule.goal is None:
            continue
        at = trigger.fired_at
        kept = [g for g in profile.open_goals if g[4] >= at]
        kept.append([trigger.trigger_id, trigger.rule_id, trigger.arm, at, at + rule.goal.within])
        profile.open_goals = kept


def convert(ruleset: RuleSet, profile: Profile, event: Touchpoint) -> list[TriggerConverted]:
    """The conversions ``event`` (already folded into ``profile``) makes; the
    converted and the expired goals leave ``profile.open_goals``."""
    at = event.occurred_at
    by_id = ruleset.by_id
    kept: list[list[Any]] = []
    out: list[TriggerConverted] = []
    value = _value(event)
    for goal in profile.open_goals:
        trigger_id, rule_id, arm, fired_at, deadline = goal
        if deadline < at:
            continue
        rule = by_id.get(rule_id)
        if (
            rule is not None
            and rule.goal is not None
            and fired_at < at
            and _meets(rule.goal, profile, event)
        ):
            out.append(
                TriggerConverted(
                    trigger_id,
                    rule_id,
                    arm,
                    profile.customer_id,
                    event.event_id,
                    at,
                    fired_at,
                    value,
                )
            )
            continue
        kept.append(goal)
    profile.open_goals = kept
    return out


def _meets(goal: Goal, profile: Profile, event: Touchpoint) -> bool:
    if event.type not in goal.types:
        return False
    if goal.when is None or goal.needs is None:
        return True
    at = event.occurred_at
    return goal.when.test(Scope(goal.needs, profile, at, profile, at, event).context())


def _value(event: Touchpoint) -> float | None:
    amount = event.properties.get("amount")
    if isinstance(amount, int | float) and not isinstance(amount, bool):
        return float(amount)
    return None
