"""The compiled rule: what the loader produces and the evaluator reads.

Everything here is immutable and compiled once at load (expressions, field
getters, durations), so evaluating a rule per event does no parsing and no
name lookups beyond what the rule itself needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from events.errors import EngageError
from events.model import DAY, Micros
from projections.predictions import Model
from projections.profile import Profile
from rules.expressions import Expression
from rules.guards import Guard
from rules.native import NativeCondition, Operand
from rules.rule_fields import Getter

Audience = Literal["marketing", "service"]
OnceKind = Literal["customer", "event", "quiet_spell", "key"]

DEFAULT_CAP_COUNT: Final = 3
DEFAULT_CAP_WINDOW: Final = 7 * DAY


class RuleError(EngageError):
    """A rule file that cannot be loaded: says which rule, where and why, so the
    CLI prints one actionable line and a running engine keeps its last good rules."""

    def __init__(
        self,
        reason: str,
        *,
        rule_id: str | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.rule_id = rule_id
        self.line = line
        self.source = source
        where = source or "<rules>"
        if line is not None:
            where = f"{where}:{line}"
        who = f" rule {rule_id!r}:" if rule_id else ""
        super().__init__(f"{where}:{who} {reason}")


@dataclass(frozen=True, slots=True)
class OncePer:
    """At most one trigger per customer (``customer``), per touchpoint (``event``),
    per quiet spell of a timer (``quiet_spell``, keyed by the anchor instant),
    or per value of a CEL ``key`` such as ``event.properties.case_id``."""

    kind: OnceKind
    key: Expression | None = None
    native_key: Operand | None = None
    """``key`` read without CEL when it is a lone path (see ``rules.native``)."""


Solver = Callable[[Profile, Model | None], Micros | None]
"""A due instant solved from the profile and the model in effect (``rules.predicted``)."""


@dataclass(frozen=True, slots=True)
class Due:
    """A timer's due instant: ``anchor`` (a profile time field) + ``offset``,
    or, with ``solve``, an instant solved from the profile and the fitted model
    in effect (``due: p_alive < 0.3``); the anchor then only names the quiet
    spell (a new value of it is a new spell)."""

    anchor: str
    offset: Micros
    getter: Getter
    solve: Solver | None = None
    text: str = ""
    """How the rule file spelled it, for listings."""

    def of(self, profile: Profile, model: Model | None = None) -> Micros | None:
        """The due instant the profile arms now, or None while there is none."""
        if self.solve is not None:
            return self.solve(profile, model)
        anchor: Micros | None = self.getter(profile, 0)
        return None if anchor is None else anchor + self.offset


@dataclass(frozen=True, slots=True)
class Needs:
    """The fields a set of expressions reads: the CEL context is built from these only."""

    before: tuple[tuple[str, Getter], ...] = ()
    after: tuple[tuple[str, Getter], ...] = ()
    event: tuple[str, ...] = ()
    now: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule. ``on: event`` rules have ``types`` (their index keys);
    ``on: timer`` rules have ``due``. ``version`` goes into every trigger id, so
    changing what a rule means under the same version would make replays lie."""

    id: str
    version: int
    kind: str
    audience: Audience
    on: Literal["event", "timer"]
    types: tuple[str, ...] = ()
    names: frozenset[str] | None = None
    """With ``custom`` in ``types``: the custom event names that count (rules
    match a custom event by name); other types are not affected."""
    when: Expression | None = None
    native: NativeCondition | None = None
    """The fast path derived from ``when`` when it has the simple shape."""
    guards: tuple[Guard, ...] = ()
    due: Due | None = None
    once_per: OncePer | None = None
    cooldown: Micros | None = None
    details: tuple[tuple[str, Expression], ...] = ()
    native_details: tuple[Operand | None, ...] = ()
    """Per detail, its lone-path fast path, if it is one (see ``rules.native``)."""
    description: str = ""
    needs: Needs = field(default_factory=Needs)
    """What ``when`` and the once-per key read (the hot path)."""
    detail_needs: Needs = field(default_factory=Needs)
    """What ``details`` read as well (built only when the rule fires)."""
    line: int | None = None
    marketing: bool = field(init=False)
    """Consent and the cap apply (a plain attribute: it is read on every event)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "marketing", self.audience == "marketing")


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``count`` marketing triggers per customer in any ``window``."""

    count: int = DEFAULT_CAP_COUNT
    window: Micros = DEFAULT_CAP_WINDOW


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules, indexed so an event only meets the rules that name its type.

    ``by_type`` and ``needs_by_type`` are derived once here: the evaluator does
    one dict lookup per event and, for the types no rule names (most of them),
    nothing else.
    """

    rules: tuple[Rule, ...]
    cap: FrequencyCap = field(default_factory=FrequencyCap)
    source: str | None = None
    by_id: dict[str, Rule] = field(init=False)
    by_type: dict[str, tuple[Rule, ...]] = field(init=False)
    needs_by_type: dict[str, Needs] = field(init=False)
    timer_rules: tuple[Rule, ...] = field(init=False)
    uses_model: bool = field(init=False)
    """Some timer's due instant depends on the fitted model: a new model re-arms
    every customer with repeat purchases."""

    def __post_init__(self) -> None:
        by_type: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for event_type in rule.types:
                by_type.setdefault(event_type, []).append(rule)
        object.__setattr__(self, "by_id", {rule.id: rule for rule in self.rules})
        object.__setattr__(self, "by_type", {t: tuple(rs) for t, rs in by_type.items()})
        object.__setattr__(
            self,
            "needs_by_type",
            {t: merge_needs(r.needs for r in rs) for t, rs in by_type.items()},
        )
        object.__setattr__(self, "timer_rules", tuple(r for r in self.rules if r.on == "timer"))
        object.__setattr__(
            self,
            "uses_model",
            any(r.due is not None and r.due.solve is not None for r in self.timer_rules),
        )

    @property
    def event_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.on == "event")


def merge_needs(all_needs: Iterable[Needs]) -> Needs:
    """The union, so one context serves every rule an event meets."""
    before: dict[str, Getter] = {}
    after: dict[str, Getter] = {}
    event: dict[str, None] = {}
    now = False
    for needs in all_needs:
        before.update(needs.before)
        after.update(needs.after)
        event.update(dict.fromkeys(needs.event))
        now = now or needs.now
    return Needs(tuple(before.items()), tuple(after.items()), tuple(event), now)
