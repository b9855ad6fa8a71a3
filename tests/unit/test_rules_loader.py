"""A rule file with an error is refused whole, naming the rule, the line and the reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engage.errors import EngageError
from events.model import DAY, HOUR
from rules import RuleError, default_rules_path, load_rules, load_rules_text
from rules.durations import format_duration, parse_duration


def rule_file(body: str) -> str:
    return "rules:\n" + textwrap.indent(textwrap.dedent(body), "  ")


GOOD = """\
- id: good
  version: 1
  kind: thank_you
  on: event
  types: [purchase]
  when: after.order_count == 1
"""


def refused(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_rules_text(text, "pack.yaml")
    return info.value


def test_default_pack_loads_from_its_path() -> None:
    rules = load_rules(default_rules_path())
    assert len(rules.rules) == 9
    assert rules.cap.count == 3 and rules.cap.window == 7 * DAY


def test_a_syntax_error_names_rule_line_and_reason() -> None:
    error = refused(
        rule_file(
            GOOD
            + """\
- id: broken
  version: 2
  kind: churn_risk
  on: event
  types: [email_opened]
  when: after.opens_60d >= && true
"""
        )
    )
    assert isinstance(error, EngageError)
    assert (error.rule_id, error.line, error.source) == ("broken", 13, "pack.yaml")
    assert "Syntax error" in error.reason and "column" in error.reason
    assert str(error).startswith("pack.yaml:13: rule 'broken': when:")


def test_a_multiline_condition_reports_the_line_inside_it() -> None:
    error = refused(
        rule_file(
            """\
- id: multi
  version: 1
  kind: thank_you
  on: event
  types: [purchase]
  when: |
    after.order_count == 1 &&
    after.lifetime_spend >=
"""
        )
    )
    assert error.line == 9


@pytest.mark.parametrize(
    ("snippet", "line", "reason"),
    [
        ("when: after.lifetime_spnd > 1", 7, "unknown field 'lifetime_spnd'"),
        ("when: after.purchases_120d > 1", 7, "keeps purchases for 90 days"),
        ("when: event.properties.scroe <= 6", 7, "no such key 'scroe'"),
        ("when: event.properties.order_id > 5", 7, "No such overload"),
        ("when: evnt.type == 'purchase'", 7, "Undefined variable"),
        ("when: after.order_count", 7, "must be true or false"),
        ("cooldown: 30 days", 7, "not a duration"),
        ("cooldwn: 30d", 7, "unknown key 'cooldwn'"),
        ("once_per: quiet_spell", 7, "for on: timer rules"),
        ("crosses: {field: lifetime_spend}", 7, "needs 'field' and 'at'"),
        ("enters: sleepy", 7, "unknown lifecycle stage"),
        ("due: last_seen + 30d", 7, "only an on: timer rule"),
    ],
)
def test_each_mistake_is_refused_with_its_reason(snippet: str, line: int, reason: str) -> None:
    text = rule_file(
        f"""\
- id: r
  version: 1
  kind: thank_you
  on: event
  types: [purchase]
  {snippet}
"""
    )
    error = refused(text)
    assert error.rule_id == "r"
    assert error.line == line
    assert reason in error.reason


@pytest.mark.parametrize(
    ("body", "rule_id", "reason"),
    [
        ("- {id: a, version: 1, kind: k, on: event}", "a", "needs 'types'"),
        ("- {id: a, version: 1, kind: k, on: event, types: [buy]}", "a", "unknown event type"),
        ("- {id: a, version: 0, kind: k, on: event, types: [purchase]}", "a", "version"),
        ("- {id: a, kind: k, on: event, types: [purchase]}", "a", "missing 'version'"),
        ("- {id: a, version: 1, kind: k, on: time}", "a", "on: expected event or timer"),
        ("- {id: a, version: 1, kind: k, on: timer}", "a", "needs 'due'"),
        ("- {id: a, version: 1, kind: k, on: timer, due: last_seen}", "a", "due:"),
        ("- {id: a, version: 1, kind: k, on: timer, due: nps_last + 3d}", "a", "time field"),
        ("- {id: a, version: 1, kind: k, on: timer, due: p_alive < 1.5}", "a", "between 0 and 1"),
        ("- {id: a, version: 1, kind: k, on: timer, due: p_alive < x}", "a", "between 0 and 1"),
        (
            "- {id: a, version: 1, kind: k, on: timer, due: last_seen + 1d, when: "
            "event.type != 'x'}",
            "a",
            "a timer has no event",
        ),
        (
            "- {id: a, version: 1, kind: k, on: event, types: [purchase], audience: x}",
            "a",
            "audience",
        ),
        ("- {id: '~a', version: 1, kind: k, on: event, types: [purchase]}", None, "id '~a'"),
        ("- {version: 1, kind: k, on: event, types: [purchase]}", None, "needs an 'id'"),
    ],
)
def test_structural_mistakes(body: str, rule_id: str | None, reason: str) -> None:
    error = refused(rule_file(body))
    assert error.rule_id == rule_id
    assert error.line == 2
    assert reason in error.reason


def test_duplicate_ids_are_refused_at_the_second() -> None:
    error = refused(rule_file(GOOD + GOOD))
    assert (error.rule_id, error.line) == ("good", 8)
    assert "first defined on line 2" in error.reason


def test_a_bare_list_is_the_rules_with_the_default_cap() -> None:
    """The README's example is a bare list; both shapes load the same rules."""
    bare = load_rules_text(textwrap.dedent(GOOD))
    wrapped = load_rules_text(rule_file(GOOD))
    assert [r.id for r in bare.rules] == [r.id for r in wrapped.rules] == ["good"]
    assert bare.cap == wrapped.cap
    assert bare.rules[0].line == 1


def test_invalid_yaml_and_wrong_shapes() -> None:
    assert refused("rules: [\n").line == 2
    no_rules = refused("frequency_cap: {count: 2}\n").reason
    assert "no top-level 'rules' key" in no_rules and "expected a list of rules" in no_rules
    assert "expected a list of rules" in refused("42\n").reason
    one = refused("id: x\nversion: 1\n").reason
    assert "one rule, not a list" in one and "'rules:'" in one
    assert "empty" in refused("").reason
    assert "unknown key 'rule'" in refused("rule: []\n").reason
    assert "count" in refused("frequency_cap: {count: 0}\nrules: []\n").reason


def test_unreadable_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_on_is_read_as_text_not_yaml_boolean() -> None:
    # PyYAML reads a bare `on` key as True; the loader keeps the author's text
    rules = load_rules_text(rule_file(GOOD))
    assert rules.rules[0].on == "event"


def test_frequency_cap_is_configurable() -> None:
    rules = load_rules_text("frequency_cap: {count: 5, window: 2d}\n" + rule_file(GOOD))
    assert (rules.cap.count, rules.cap.window) == (5, 2 * DAY)


def test_details_accept_constants_and_expressions() -> None:
    rules = load_rules_text(
        rule_file(GOOD + "  details: {threshold: 1000, big: true, spend: after.lifetime_spend}\n")
    )
    names = [(name, e.source) for name, e in rules.rules[0].details]
    assert names == [("threshold", "1000"), ("big", "true"), ("spend", "after.lifetime_spend")]


def test_durations() -> None:
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration(" 12h ") == 12 * HOUR
    assert parse_duration("2w") == 14 * DAY
    for bad in ("30", "d", "1.5d", "0d", "30 days"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(90 * DAY) == "90d"
    assert format_duration(14 * DAY) == "2w"
