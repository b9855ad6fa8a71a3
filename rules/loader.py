"""Load a YAML rule file into a compiled ``RuleSet``, or refuse it whole.

The file is walked as YAML *nodes*, not loaded into plain dicts, for two
reasons: every error can name the line it comes from, and keys stay the
author's text (PyYAML would read ``on:`` as the boolean true, a YAML 1.1 quirk).
One bad rule refuses the whole file, so a running engine never ends up with
half a rule pack; keeping the last good one is the caller's part.

File shape (a bare list of rules, as in the README, is accepted too: it
means the default frequency cap)::

    frequency_cap: {count: 3, window: 7d}      # optional; marketing rules only
    rules:
      - id: lifetime-spend-1000
        version: 1
        kind: spend_threshold
        audience: marketing                    # or service: no consent, no cap
        on: event                              # or timer
        types: [purchase, refund]              # on: event; indexes the rule
        crosses: {field: lifetime_spend, at: 1000}   # and/or enters: at_risk
        when: after.order_count >= 1           # CEL over event, before, after, now
        due: last_seen + 30d                   # on: timer; or p_alive < 0.3 (the fitted model)
        once_per: customer                     # event | quiet_spell | a CEL key
        cooldown: 30d
        details: {lifetime_spend: after.lifetime_spend}
        goal: {types: [purchase], within: 14d, when: "event.properties.amount > 0"}
        holdout: 0.1                           # 0 to 0.5: this share goes to the control arm
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, cast

import yaml

from events.model import EVENT_TYPES, Touchpoint
from projections.customer360 import STAGES
from rules.durations import parse_duration
from rules.expressions import Expression, ExpressionError, compile_expression
from rules.firing import Scope
from rules.goal_spec import GoalError, goal_of, holdout_of
from rules.guards import Crossing, Entering, Guard
from rules.model import Audience, Due, FrequencyCap, Goal, Needs, OncePer, Rule, RuleError, RuleSet
from rules.native import compile_native, compile_native_value
from rules.predicted import ANCHOR, p_alive_below
from rules.rule_fields import EVENT_FIELDS, TIME_FIELDS, Getter, field_getter
from rules.samples import SAMPLE_AT, sample_event, sample_profile

_RULE_KEYS: Final = frozenset(
    {"id", "version", "kind", "audience", "description", "on", "types", "names", "when",
     "crosses", "enters", "due", "once_per", "cooldown", "details", "goal", "holdout"}
)  # fmt: skip
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_KIND: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_DUE: Final = re.compile(r"^\s*([a-z_]+)\s*\+\s*(.+?)\s*$")
_SHAPE: Final = (
    "expected a list of rules ('- id: ...' items), or a mapping with a 'rules:' list "
    "and an optional 'frequency_cap:'"
)
_BELOW: Final = re.compile(r"^\s*p_alive\s*<\s*(\S+)\s*$")


def default_rules_path() -> Path:
    return Path(str(files("rules") / "default.yaml"))


def default_rules() -> RuleSet:
    """The shipped pack (``rules/default.yaml``)."""
    return load_rules(default_rules_path())


def load_rules(path: str | Path) -> RuleSet:
    """Read and compile a rule file; ``RuleError`` names the file, line, rule and reason."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the rule file: {exc}", source=str(path)) from None
    return load_rules_text(text, str(path))


def load_rules_text(text: str, source: str = "<rules>") -> RuleSet:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise RuleError(f"not valid YAML: {exc.problem}", line=line, source=source) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"not valid YAML: {exc}", source=source) from None
    if root is None:
        raise RuleError(f"the file is empty; {_SHAPE}", source=source)
    top = _Node(root, source, None)
    if isinstance(root, yaml.SequenceNode):
        items, cap = top.sequence(), FrequencyCap()
    elif isinstance(root, yaml.MappingNode):
        names = {k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
        if "id" in names and "rules" not in names:
            top.fail(f"this is one rule, not a list of rules; {_SHAPE}")
        keys = top.mapping(frozenset({"rules", "frequency_cap"}))
        if "rules" not in keys:
            top.fail(f"no top-level 'rules' key; {_SHAPE}")
        cap = _cap(keys["frequency_cap"]) if "frequency_cap" in keys else FrequencyCap()
        items = keys["rules"].sequence()
    else:
        top.fail(f"the file holds a single value; {_SHAPE}")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for item in items:
        rule = _compile_rule(_Node(item.node, source, None))
        if rule.id in seen:
            raise RuleError(
                f"duplicate rule id (first defined on line {seen[rule.id]})",
                rule_id=rule.id,
                line=rule.line,
                source=source,
            )
        seen[rule.id] = rule.line or 0
        rules.append(rule)
    return RuleSet(tuple(rules), cap, source)


class _Node:
    """A YAML node with the rule it belongs to, so any check can fail with a line."""

    def __init__(self, node: yaml.Node, source: str, rule_id: str | None) -> None:
        self.node = node
        self.source = source
        self.rule_id = rule_id
        self.line = node.start_mark.line + 1

    def fail(self, reason: str, line: int | None = None) -> NoReturn:
        # from None: the library error behind it is already said in ``reason``
        raise RuleError(
            reason, rule_id=self.rule_id, line=line or self.line, source=self.source
        ) from None

    def child(self, node: yaml.Node) -> _Node:
        return _Node(node, self.source, self.rule_id)

    def mapping(self, allowed: frozenset[str]) -> dict[str, _Node]:
        if not isinstance(self.node, yaml.MappingNode):
            self.fail("expected a mapping (key: value)")
        out: dict[str, _Node] = {}
        for key, value in self.node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if not isinstance(name, str) or name not in allowed:
                known = ", ".join(sorted(allowed))
                self.fail(f"unknown key {name!r}; allowed: {known}", key.start_mark.line + 1)
            if name in out:
                self.fail(f"duplicate key {name!r}", key.start_mark.line + 1)
            out[name] = self.child(value)
        return out

    def sequence(self) -> list[_Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            self.fail("expected a list")
        return [self.child(item) for item in self.node.value]

    def value(self) -> Any:
        # a fresh constructor: one keeps every node it built, and loads may run concurrently
        return yaml.constructor.SafeConstructor().construct_object(self.node, deep=True)

    def text(self, what: str) -> str:
        value = self.value()
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what}: expected a non-empty string, got {value!r}")
        return value.strip()

    def expression(self, what: str, literal: bool = False) -> Expression:
        """Compile the node's text; with ``literal`` a YAML number, boolean or
        null is accepted as the CEL constant it spells (``threshold: 1000``)."""
        value = self.value()
        if literal and not isinstance(value, str):
            value = _cel_literal(value)
        if not isinstance(value, str):
            self.fail(f"{what}: expected a CEL expression string, got {value!r}")
        try:
            # trailing newlines of a block scalar would move CEL's EOF errors a line down
            return compile_expression(value.rstrip())
        except ExpressionError as exc:
            line = self.line
            if exc.line is not None:
                style = getattr(self.node, "style", None)
                line += exc.line - 1 + (1 if style in ("|", ">") else 0)
            column = "" if exc.column is None else f" (column {exc.column} of the expression)"
            self.fail(f"{what}: {exc.reason}{column}", line)


def _cap(node: _Node) -> FrequencyCap:
    keys = node.mapping(frozenset({"count", "window"}))
    count = keys["count"].value() if "count" in keys else FrequencyCap().count
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        node.fail(f"frequency_cap.count: expected a whole number of at least 1, got {count!r}")
    window = _duration(keys["window"], "frequency_cap.window") if "window" in keys else None
    return FrequencyCap(count, window or FrequencyCap().window)


def _duration(node: _Node, what: str) -> int:
    try:
        return parse_duration(str(node.value()))
    except ValueError as exc:
        node.fail(f"{what}: {exc}")


def _peek_id(node: yaml.Node) -> str | None:
    """The rule's id before validation, so even its first error can name it."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "id" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None


def _compile_rule(node: _Node) -> Rule:
    node.rule_id = _peek_id(node.node)
    keys = node.mapping(_RULE_KEYS)
    if "id" not in keys:
        node.fail("a rule needs an 'id'")
    rule_id = keys["id"].text("id")
    if not _ID.match(rule_id):
        node.rule_id = None
        keys["id"].rule_id = None
        keys["id"].fail(f"id {rule_id!r}: use letters, digits and _ . : - (at most 128)")
    for required in ("version", "kind", "on"):
        if required not in keys:
            node.fail(f"missing '{required}'")
    version = keys["version"].value()
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        keys["version"].fail(f"version: expected a whole number of at least 1, got {version!r}")
    kind = keys["kind"].text("kind")
    if not _KIND.match(kind):
        keys["kind"].fail(f"kind {kind!r}: use lower-case letters, digits and _")
    audience = keys["audience"].text("audience") if "audience" in keys else "marketing"
    if audience not in ("marketing", "service"):
        keys["audience"].fail(f"audience: expected marketing or service, got {audience!r}")
    on = keys["on"].text("on")
    if on not in ("event", "timer"):
        keys["on"].fail(f"on: expected event or timer, got {on!r}")
    types = _types(keys, on, node)
    names = _names(keys, types)
    due = _due(keys, on, node)
    guards = _guards(keys)
    when = keys["when"].expression("when") if "when" in keys else None
    once_per = _once_per(keys, on)
    cooldown = _duration(keys["cooldown"], "cooldown") if "cooldown" in keys else None
    detail_exprs = _details(keys)
    hot: list[tuple[_Node, Expression]] = []
    if when is not None:
        hot.append((keys["when"], when))
    if once_per is not None and once_per.key is not None:
        hot.append((keys["once_per"], once_per.key))
    needs = _needs(hot)
    detail_needs = _needs([*hot, *((keys["details"], e) for _, e in detail_exprs)])
    rule = Rule(
        id=rule_id,
        version=version,
        kind=kind,
        audience=cast(Audience, audience),
        on=cast(Literal["event", "timer"], on),
        types=types,
        names=names,
        when=when,
        native=None if when is None else compile_native(when.source),
        guards=guards,
        due=due,
        once_per=once_per,
        cooldown=cooldown,
        details=detail_exprs,
        native_details=tuple(compile_native_value(e.source) for _, e in detail_exprs),
        description=keys["description"].text("description") if "description" in keys else "",
        goal=_goal(keys["goal"]) if "goal" in keys else None,
        holdout=_holdout(keys["holdout"]) if "holdout" in keys else 0.0,
        needs=needs,
        detail_needs=detail_needs,
        line=node.line,
    )
    return _dry_run(rule, keys)


def _types(keys: dict[str, _Node], on: str, node: _Node) -> tuple[str, ...]:
    if on == "timer":
        if "types" in keys:
            keys["types"].fail("types: a timer fires on time passing, not on event types")
        return ()
    if "types" not in keys:
        node.fail("an on: event rule needs 'types', the event types that can trigger it")
    types = tuple(str(item.value()) for item in keys["types"].sequence())
    if not types:
        keys["types"].fail("types: name at least one event type")
    for event_type in types:
        if event_type not in EVENT_TYPES:
            keys["types"].fail(
                f"types: unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}"
            )
    return tuple(dict.fromkeys(types))


def _names(keys: dict[str, _Node], types: tuple[str, ...]) -> frozenset[str] | None:
    """``names:`` the custom event names a rule on ``custom`` events matches."""
    if "names" not in keys:
        return None
    if "custom" not in types:
        keys["names"].fail("names: only for rules whose types include custom (matched by name)")
    names = [item.value() for item in keys["names"].sequence()]
    if not names or not all(isinstance(n, str) and 1 <= len(n) <= 128 for n in names):
        keys["names"].fail("names: name at least one custom event, each 1 to 128 characters")
    return frozenset(names)


def _due(keys: dict[str, _Node], on: str, node: _Node) -> Due | None:
    if on == "event":
        if "due" in keys:
            keys["due"].fail("due: only an on: timer rule has a due instant")
        return None
    if "due" not in keys:
        node.fail("an on: timer rule needs 'due', e.g. due: last_seen + 30d")
    text = keys["due"].text("due")
    below = _BELOW.match(text)
    if below is not None:
        try:
            threshold = float(below.group(1))
            solve = p_alive_below(threshold)
        except ValueError:
            keys["due"].fail(f"due: p_alive < X needs X between 0 and 1 (exclusive); got {text!r}")
        return Due(ANCHOR, 0, field_getter(ANCHOR), solve, text)
    match = _DUE.match(text)
    if match is None or match.group(1) not in TIME_FIELDS:
        keys["due"].fail(
            f"due: expected '<time field> + <duration>' with a time field of "
            f"{', '.join(sorted(TIME_FIELDS))}, or 'p_alive < <probability>'; got {text!r}"
        )
    try:
        offset = parse_duration(match.group(2))
    except ValueError as exc:
        keys["due"].fail(f"due: {exc}")
    return Due(match.group(1), offset, field_getter(match.group(1)), None, text)


def _getter(node: _Node, name: object, what: str) -> Getter:
    try:
        return field_getter(str(name))
    except ValueError as exc:
        node.fail(f"{what}: {exc}")


def _guards(keys: dict[str, _Node]) -> tuple[Guard, ...]:
    guards: list[Guard] = []
    if "crosses" in keys:
        node = keys["crosses"]
        spec = node.mapping(frozenset({"field", "at", "direction"}))
        if "field" not in spec or "at" not in spec:
            node.fail("crosses: needs 'field' and 'at', e.g. {field: lifetime_spend, at: 1000}")
        name = spec["field"].text("crosses.field")
        at = spec["at"].value()
        if not isinstance(at, int | float) or isinstance(at, bool):
            spec["at"].fail(f"crosses.at: expected a number, got {at!r}")
        direction = spec["direction"].text("crosses.direction") if "direction" in spec else "up"
        if direction not in ("up", "down"):
            spec["direction"].fail(f"crosses.direction: expected up or down, got {direction!r}")
        getter = _getter(spec["field"], name, "crosses.field")
        guards.append(Crossing(name, at, cast(Literal["up", "down"], direction), getter))
    if "enters" in keys:
        stage = keys["enters"].text("enters")
        if stage not in STAGES:
            keys["enters"].fail(f"enters: unknown lifecycle stage {stage!r}; one of {STAGES}")
        guards.append(Entering(stage, field_getter("lifecycle_stage")))
    return tuple(guards)


def _once_per(keys: dict[str, _Node], on: str) -> OncePer | None:
    if "once_per" not in keys:
        # a timer stays armed after it fires until its anchor moves: without a
        # once-per it would fire again at every check
        return OncePer("quiet_spell") if on == "timer" else None
    node = keys["once_per"]
    text = node.text("once_per")
    if text == "customer":
        return OncePer("customer")
    if text == "event":
        if on == "timer":
            node.fail("once_per: event is for on: event rules; a timer uses quiet_spell")
        return OncePer("event")
    if text == "quiet_spell":
        if on == "event":
            node.fail("once_per: quiet_spell is for on: timer rules")
        return OncePer("quiet_spell")
    key = node.expression("once_per")
    return OncePer("key", key, compile_native_value(key.source))


def _details(keys: dict[str, _Node]) -> tuple[tuple[str, Expression], ...]:
    if "details" not in keys:
        return ()
    node = keys["details"]
    if not isinstance(node.node, yaml.MappingNode):
        node.fail("details: expected a mapping of name: CEL expression")
    out: list[tuple[str, Expression]] = []
    for key, value in node.node.value:
        name = str(key.value)
        out.append((name, node.child(value).expression(f"details.{name}", literal=True)))
    return tuple(out)


def _holdout(node: _Node) -> float:
    try:
        return holdout_of(node.value())
    except ValueError as exc:
        node.fail(f"holdout: {exc}")


def _goal(node: _Node) -> Goal:
    """``goal: {types: [...], within: 14d, when: CEL}`` (``rules.goal_spec``)."""
    keys = node.mapping(frozenset({"types", "within", "when"}))
    if "types" not in keys or "within" not in keys:
        node.fail("goal: needs 'types' and 'within', e.g. {types: [purchase], within: 14d}")
    types = [item.value() for item in keys["types"].sequence()]
    within = _duration(keys["within"], "goal.within")
    when_node = keys.get("when")
    when = None if when_node is None else when_node.expression("goal.when")
    needs = None if when_node is None or when is None else _needs([(when_node, when)])
    try:
        return goal_of(types, within, when, needs)
    except GoalError as exc:
        keys[exc.key].fail(f"goal.{exc.key}: {exc}")


def _cel_literal(value: object) -> object:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return value


def _needs(expressions: list[tuple[_Node, Expression]]) -> Needs:
    before: dict[str, Getter] = {}
    after: dict[str, Getter] = {}
    event: dict[str, None] = {}
    now = False
    for node, expression in expressions:
        for root, names in expression.fields.items():
            for name in sorted(names):
                if root == "event":
                    if name not in EVENT_FIELDS:
                        node.fail(
                            f"{expression.source!r}: event has no {name!r}; "
                            f"it has {', '.join(sorted(EVENT_FIELDS))}"
                        )
                    event[name] = None
                else:
                    getter = _getter(node, name, repr(expression.source))
                    (before if root == "before" else after)[name] = getter
        now = now or "now" in expression.roots
    return Needs(tuple(sorted(before.items())), tuple(sorted(after.items())), tuple(event), now)


def _dry_run(rule: Rule, keys: dict[str, _Node]) -> Rule:
    """Run every expression once on sample values (see ``rules.samples``).

    Also a cross-check of the native fast path: should it ever answer other than
    CEL on a sample, the rule keeps CEL alone (the returned rule).
    """
    checks: list[tuple[str, Expression]] = []
    if rule.when is not None:
        checks.append(("when", rule.when))
    if rule.once_per is not None and rule.once_per.key is not None:
        checks.append(("once_per", rule.once_per.key))
    checks.extend((f"details.{name}", expression) for name, expression in rule.details)
    if not checks:
        return rule
    profile = sample_profile()
    events: list[Touchpoint | None] = [sample_event(t) for t in rule.types] or [None]
    for what, expression in checks:
        node = keys[what.split(".")[0]]
        if rule.on == "timer" and "event" in expression.roots:
            node.fail(f"{what}: a timer has no event; use before/after (the profile)")
        for event in events:
            scope = Scope(rule.detail_needs, profile, SAMPLE_AT - 1, profile, SAMPLE_AT, event)
            context = scope.context()
            sample = "" if event is None else f" (tried on a sample {event.type} event)"
            try:
                value = expression.run(context)
            except ExpressionError as exc:
                hint = ""
                if "Undefined variable" in exc.reason:
                    hint = "; a condition reads event.<field>, before.<field>, after.<field>, now"
                node.fail(f"{what}: {exc.reason}{hint}{sample}")
            if what == "when" and not isinstance(value, bool):
                node.fail(f"when: must be true or false, got {value!r}{sample}")
            if what == "when" and rule.native is not None:
                fast = rule.native.judge(profile, SAMPLE_AT - 1, profile, SAMPLE_AT, event)
                if fast is not None and fast != value:
                    rule = replace(rule, native=None)
    return rule
