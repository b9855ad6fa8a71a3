"""What on-event rules and timers share: judging a rule on one occurrence, and the trigger.

``trigger_id`` is a hash of (rule id, rule version, customer, occurrence), where
the occurrence is the causing event's id for an on-event rule and the due
instant for a timer. A redelivered batch or a replay from the start of the log
therefore produces byte-identical ids, and the outbox can drop the repeat.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import cel

from events.model import Micros, Touchpoint, TriggerEvent
from projections.profile import Profile
from rules.arms import arm_of
from rules.model import Needs, Rule
from rules.native import MISSING
from rules.rule_fields import event_view, profile_view

_SEP: Final = "\x1f"


def trigger_id(rule_id: str, version: int, customer_id: str, occurrence: str) -> str:
    """32 hex digits (128 bits): deterministic, and short enough for an index."""
    text = _SEP.join((rule_id, str(version), customer_id, occurrence))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Scope:
    """One occurrence (an event, or a timer's due instant) as the rules see it.

    The CEL context is built at most once and only if some rule needs CEL
    after its guards and fast path, then shared by every rule judged here.
    """

    __slots__ = ("_context", "after", "after_at", "before", "before_at", "event", "needs")

    def __init__(
        self,
        needs: Needs,
        before: Profile,
        before_at: Micros,
        after: Profile,
        after_at: Micros,
        event: Touchpoint | None,
    ) -> None:
        self.needs = needs
        self.before = before
        self.before_at = before_at
        self.after = after
        self.after_at = after_at
        self.event = event
        self._context: cel.Context | None = None

    def context(self, needs: Needs | None = None) -> cel.Context:
        """A CEL context holding only the fields ``needs`` reads (by default the
        scope's own needs, whose context is built once and kept)."""
        if needs is not None and needs is not self.needs:
            return self._build(needs)
        if self._context is None:
            self._context = self._build(self.needs)
        return self._context

    def _build(self, needs: Needs) -> cel.Context:
        variables: dict[str, Any] = {}
        if needs.before:
            variables["before"] = profile_view(self.before, self.before_at, needs.before)
        if needs.after:
            variables["after"] = profile_view(self.after, self.after_at, needs.after)
        if needs.event and self.event is not None:
            variables["event"] = event_view(self.event, needs.event)
        if needs.now:
            variables["now"] = self.after_at
        return cel.Context(variables)

    def holds(self, rule: Rule) -> bool:
        """Guards, then the native fast path, then CEL when still undecided."""
        b, bt, a, at = self.before, self.before_at, self.after, self.after_at
        names, event = rule.names, self.event
        if (
            names is not None
            and event is not None
            and event.type == "custom"
            and event.properties.get("name") not in names
        ):
            return False
        for guard in rule.guards:
            if not guard.test(b, bt, a, at):
                return False
        if rule.when is None:
            return True
        if rule.native is not None:
            verdict = rule.native.judge(b, bt, a, at, self.event)
            if verdict is not None:
                return verdict
        return rule.when.test(self.context())

    def once_key(self, rule: Rule) -> str | None:
        """The once-per key of this occurrence: None when the rule is not keyed
        by occurrence; ``""`` when a key cannot be judged (then the rule does not
        fire, since "once" could not be kept)."""
        once = rule.once_per
        if once is None or once.kind == "customer":
            return None
        if once.kind == "event":
            return "" if self.event is None else self.event.event_id
        if once.native_key is not None:
            value = once.native_key(
                self.before, self.before_at, self.after, self.after_at, self.event
            )
            if value is not MISSING and type(value) in (str, int):
                return str(value)
        if once.key is None:
            return ""
        try:
            value = once.key.run(self.context())
        except ValueError:
            return ""
        return "" if value is None else str(value)

    def details(self, rule: Rule) -> dict[str, Any]:
        """The facts marketing gets with the trigger. Built only when the rule
        fires, so ``details`` cost nothing on the events where it does not."""
        out: dict[str, Any] = {}
        for guard in rule.guards:
            out.update(guard.details(self.after, self.after_at))
        context: cel.Context | None = None
        args = (self.before, self.before_at, self.after, self.after_at, self.event)
        for (name, expression), fast in zip(rule.details, rule.native_details, strict=True):
            if fast is not None:
                value = fast(*args)
                if value is not MISSING:
                    out[name] = value
                    continue
            if context is None:
                context = self.context(rule.detail_needs)
            try:
                out[name] = expression.run(context)
            except ValueError:
                out[name] = None
        return out


def make_trigger(
    rule: Rule,
    customer_id: str,
    fired_at: Micros,
    occurrence: str,
    caused_by: tuple[str, ...],
    facts: dict[str, Any],
) -> TriggerEvent:
    return TriggerEvent(
        trigger_id=trigger_id(rule.id, rule.version, customer_id, occurrence),
        rule_id=rule.id,
        rule_version=rule.version,
        kind=rule.kind,
        customer_id=customer_id,
        fired_at=fired_at,
        caused_by=caused_by,
        details=facts,
        arm=arm_of(rule.id, customer_id, rule.holdout),
    )
