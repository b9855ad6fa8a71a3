"""Timers: rules that fire when time passes with no new event from the customer.

A timer is armed by the profile itself: its due instant is an anchor field plus
an offset (``last_seen + 30d``), so every new touchpoint that moves the anchor
re-arms it, and nothing but the profile has to be stored to know it. A store
keeps ``due_timers`` of each changed profile so that the processor can find the
customers whose timers the clock has passed without loading every profile.

``due_timers`` checks everything that cannot change before the due instant
without a new event for this customer (consent, once-per, cooldown, the
condition judged at the due instant); only the cap, which other fires can move,
is left to ``fire_timer``. So the stored set is exact and small: a prospect
arms no ``inactive-30d`` timer.

A timer judges ``before`` at one microsecond before its due instant and
``after`` at the due instant, so ``enters: at_risk`` with ``due: last_seen + 30d``
sees the stage change exactly then.

A due instant may also be solved from the profile and the fitted model in
effect on the customer's partition (``due: p_alive < 0.3``, ``rules.predicted``):
every function here then takes that ``model``, and the timer re-arms whenever
the profile or the model changes, exactly as an anchored one re-arms when its
anchor moves.
"""

from __future__ import annotations

from events.model import Micros, TriggerEvent
from events.timefmt import format_iso
from projections.predictions import Model
from projections.profile import Profile
from rules.controls import CAP_KEY, blocked, capped, key_used, record, spend, spent
from rules.firing import Scope, make_trigger
from rules.model import Rule, RuleSet
from rules.predicted import model_facts


def due_timers(
    ruleset: RuleSet, profile: Profile, model: Model | None = None
) -> list[tuple[str, Micros]]:
    """(rule_id, due) for every timer this profile has armed now, by rule order."""
    armed: list[tuple[str, Micros]] = []
    for rule in ruleset.timer_rules:
        due = _armed(rule, profile, model)
        if due is not None and _scope(rule, profile, due).holds(rule):
            armed.append((rule.id, due))
    return armed


def fire_timer(
    ruleset: RuleSet, rule_id: str, profile: Profile, due: Micros, model: Model | None = None
) -> list[TriggerEvent]:
    """Fire ``rule_id`` at ``due`` if it is still armed for exactly that instant.

    Returns no trigger when a newer touchpoint re-armed the timer to a later
    instant, the rule is gone from the rule set, the condition or a control says
    no, or this instant was handled before (so a repeated call is harmless).
    Once the condition holds, records the outcome in ``profile.rule_state``: a
    timer the cap held back is spent too, and ``due_timers`` no longer lists it.
    """
    rule = ruleset.by_id.get(rule_id)
    if rule is None or rule.due is None or _armed(rule, profile, model) != due:
        return []
    scope = _scope(rule, profile, due)
    if not scope.holds(rule):
        # nothing recorded: the verdict depends on the profile alone, and
        # whether a caller happened to ask must not change the stored state
        return []
    state = profile.rule_state
    spend(rule, state, due)
    if rule.marketing and capped(state.get(CAP_KEY), due, ruleset.cap):
        return []
    anchor: Micros = rule.due.getter(profile, 0)  # set: the timer is armed
    key = str(anchor) if _by_spell(rule) else scope.once_key(rule)
    if key == "" or (key is not None and key_used(rule, state, key)):
        return []
    record(rule, state, due, key, ruleset.cap)
    facts = scope.details(rule)
    facts["due"] = format_iso(due)
    facts[rule.due.anchor] = format_iso(anchor)
    if rule.due.solve is not None and model is not None:
        facts.update(model_facts(profile, due, model))
    return [
        make_trigger(rule, profile.customer_id, due, f"timer:{due}", _cause(profile, anchor), facts)
    ]


def fire_due(
    ruleset: RuleSet, profile: Profile, until: Micros, model: Model | None = None
) -> list[TriggerEvent]:
    """Fire every timer of ``profile`` due strictly before ``until``, in due order.

    Called before every event, so it looks at the anchors first and judges a
    condition only for a timer that is actually due.
    """
    due_now: list[tuple[Micros, str]] = []
    for rule in ruleset.timer_rules:
        # Due.of inlined: this runs before every event, and is nearly always "not yet"
        spec = rule.due
        if spec is None:
            continue
        if spec.solve is None:
            anchor: Micros | None = spec.getter(profile, 0)
            if anchor is None or anchor + spec.offset >= until:
                continue
            anchored = anchor + spec.offset
        else:
            solved = spec.solve(profile, model)
            if solved is None or solved >= until:
                continue
            anchored = solved
        if _armed(rule, profile, model) == anchored:
            due_now.append((anchored, rule.id))
    if not due_now:
        return []
    fired: list[TriggerEvent] = []
    for due, rule_id in sorted(due_now):
        fired.extend(fire_timer(ruleset, rule_id, profile, due, model))
    return fired


def _by_spell(rule: Rule) -> bool:
    return rule.once_per is not None and rule.once_per.kind == "quiet_spell"


def _armed(rule: Rule, profile: Profile, model: Model | None) -> Micros | None:
    """The due instant if consent and the memory-only controls allow it."""
    spec = rule.due
    if spec is None:
        return None
    due = spec.of(profile, model)
    if due is None or (rule.marketing and not profile.subscribed):
        return None
    state = profile.rule_state
    if spent(rule, state, due) or blocked(rule, state, due, None):
        return None
    if _by_spell(rule) and key_used(rule, state, str(spec.getter(profile, 0))):
        return None
    return due


def _scope(rule: Rule, profile: Profile, due: Micros) -> Scope:
    return Scope(rule.needs, profile, due - 1, profile, due, None)


def _cause(profile: Profile, anchor: Micros) -> tuple[str, ...]:
    """The touchpoint that set the anchor if it is still among the recent ones,
    else the latest touchpoint: the event after which nothing happened."""
    for event_id, _type, _channel, occurred_at in reversed(profile.recent):
        if occurred_at == anchor:
            return (event_id,)
    return (profile.recent[-1][0],) if profile.recent else ()
