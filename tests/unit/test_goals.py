"""Closed loop in the pure core: arms, goals and conversions (``rules.arms``,
``rules.goals``, ``rules.decide``), the loader's checks of ``goal:`` and
``holdout:``, and the uplift interval against the literature."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import DAY, Touchpoint, TriggerConverted, TriggerEvent
from events.partitioning import partition_for
from projections.outcomes import ArmStats, report, tally, uplift
from rules import RuleError, load_rules_text
from rules.arms import arm_of, position
from rules.decide import Record, decide
from rules.harness import Harness
from rules.model import RuleSet
from tests.unit.test_decide import PARTITIONS, Runner
from tests.unit.test_decide import _run as run_batches
from tests.unit.test_rules_properties import RULES, histories
from tests.unit.test_rules_support import History, at

HELD = RuleSet(
    tuple(dataclasses.replace(r, holdout=0.5) for r in RULES.rules), RULES.cap, RULES.source
)
"""The default pack with half of every rule's customers held out: both arms occur."""

TWO_GOALS = """
rules:
  - id: news-a
    version: 1
    kind: nudge
    on: event
    types: [email_opened]
    once_per: event
    goal: {types: [purchase], within: 7d}
  - id: news-b
    version: 1
    kind: nudge
    audience: service
    on: event
    types: [email_opened]
    once_per: event
    goal: {types: [purchase], within: 3d, when: "event.properties.amount >= 20.0"}
"""


# ------------------------------------------------------------------ arms


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.floats(0, 0.5))
def test_an_arm_is_a_function_of_rule_and_person_alone(
    rule_id: str, customer_id: str, holdout: float
) -> None:
    arm = arm_of(rule_id, customer_id, holdout)
    assert arm == arm_of(rule_id, customer_id, holdout)
    assert arm == ("control" if position(rule_id, customer_id) < holdout else "treatment")
    assert 0.0 <= position(rule_id, customer_id) < 1.0
    # a larger holdout only moves people from treatment to control
    if arm == "control":
        assert arm_of(rule_id, customer_id, 0.5) == "control"
    assert arm_of(rule_id, customer_id, 0.0) == "treatment"


def test_the_holdout_share_goes_to_control() -> None:
    people = [f"cust-{i}" for i in range(20_000)]
    held = sum(arm_of("win-back-90d", c, 0.1) == "control" for c in people) / len(people)
    assert 0.09 < held < 0.11
    # another rule draws independently: not the same people
    other = {c for c in people if arm_of("other-rule", c, 0.1) == "control"}
    mine = {c for c in people if arm_of("win-back-90d", c, 0.1) == "control"}
    assert len(other & mine) < 0.2 * len(mine)


def _run(rules: RuleSet, events: list[Touchpoint], cuts: list[int]) -> Runner:
    log: list[tuple[int, Record]] = [(partition_for(e.customer_id, PARTITIONS), e) for e in events]
    return run_batches(log, cuts, rules)


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_arms_and_conversions_are_the_same_across_batch_cuts_and_replays(
    events: list[Touchpoint], data: st.DataObject
) -> None:
    one_by_one = _run(HELD, events, list(range(len(events))))
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=6))
    batched = _run(HELD, events, cuts)
    replayed = _run(HELD, events, cuts)  # a replay: the same log from the start
    arms = {t.trigger_id: t.arm for t in one_by_one.triggers}
    for run in (batched, replayed):
        assert {t.trigger_id: t.arm for t in run.triggers} == arms
        assert sorted(run.conversions, key=lambda c: c.trigger_id) == sorted(
            one_by_one.conversions, key=lambda c: c.trigger_id
        )
        assert run.profiles == one_by_one.profiles
    for t in one_by_one.triggers:
        assert t.arm == arm_of(t.rule_id, t.customer_id, 0.5)
    converted = [c.trigger_id for c in one_by_one.conversions]
    assert len(converted) == len(set(converted)), "a trigger converts at most once"
    for c in one_by_one.conversions:
        assert c.arm == arms[c.trigger_id]
        assert 0 < c.time_to_convert <= 14 * DAY


# ------------------------------------------------------------------ conversions


def _feed(rules: RuleSet, *events: Touchpoint) -> Runner:
    runner = Runner(rules)
    for e in events:
        runner.batch([(partition_for(e.customer_id, PARTITIONS), e)])
    return runner


def test_a_purchase_inside_the_window_converts_the_thank_you() -> None:
    c = History("c1")
    first = c.purchase(0, 30.0)
    second = c.purchase(13.5, 80.0)
    run = _feed(RULES, *c.events)
    thanks = [t for t in run.triggers if t.rule_id == "first-purchase-thank-you"]
    assert len(thanks) == 1 and thanks[0].caused_by == (first.event_id,)
    assert run.conversions == [
        TriggerConverted(
            thanks[0].trigger_id,
            "first-purchase-thank-you",
            thanks[0].arm,
            "c1",
            second.event_id,
            second.occurred_at,
            first.occurred_at,
            80.0,
        )
    ]
    assert run.conversions[0].time_to_convert == int(13.5 * DAY)
    assert run.profiles["c1"].open_goals == []


def test_a_purchase_after_the_window_converts_nothing_and_the_goal_expires() -> None:
    c = History("c1")
    c.purchase(0, 30.0)
    c.purchase(14.01, 80.0)
    c.purchase(15, 80.0)
    run = _feed(RULES, *c.events)
    assert run.conversions == []
    assert run.profiles["c1"].open_goals == []


def test_the_event_that_fired_a_trigger_never_converts_it() -> None:
    c = History("c1")
    c.purchase(0, 30.0)
    run = _feed(RULES, *c.events)
    assert run.conversions == []
    assert [g[1] for g in run.profiles["c1"].open_goals] == ["first-purchase-thank-you"]


def test_one_goal_event_converts_every_open_trigger_it_meets() -> None:
    rules = load_rules_text(TWO_GOALS)
    c = History("c1")
    c.opened(0)
    c.visit(1)
    buy = c.purchase(2, 25.0)
    run = _feed(rules, *c.events)
    assert sorted(t.rule_id for t in run.triggers) == ["news-a", "news-b"]
    assert sorted((x.rule_id, x.event_id) for x in run.conversions) == [
        ("news-a", buy.event_id),
        ("news-b", buy.event_id),
    ]
    # only the first goal event converts: a later purchase finds nothing open
    c.purchase(3, 50.0)
    later = _feed(rules, *c.events)
    assert [x.event_id for x in later.conversions] == [buy.event_id] * 2


def test_a_goal_condition_and_its_own_window_per_rule() -> None:
    rules = load_rules_text(TWO_GOALS)
    c = History("c1")
    c.opened(0)
    c.purchase(1, 5.0)  # news-a's goal (any purchase); news-b wants >= 20
    late = c.purchase(4, 50.0)  # outside news-b's 3 days
    run = _feed(rules, *c.events)
    assert [x.rule_id for x in run.conversions] == ["news-a"]
    assert run.conversions[0].event_id != late.event_id
    assert run.profiles["c1"].open_goals == []


def test_a_detractor_follow_up_converts_on_a_later_nps_of_7_or_more() -> None:
    c = History("c1")
    c.add("survey_response", 0, survey="nps", score=3)
    c.add("survey_response", 5, survey="csat", score=5)  # not NPS
    c.add("survey_response", 6, survey="nps", score=6)  # a second follow-up, not a goal
    promoter = c.add("survey_response", 20, survey="nps", score=9)
    run = _feed(RULES, *c.events)
    follow = [t for t in run.triggers if t.rule_id == "detractor-follow-up"]
    assert len(follow) == 2
    assert sorted(x.trigger_id for x in run.conversions) == sorted(t.trigger_id for t in follow)
    assert {x.event_id for x in run.conversions} == {promoter.event_id}
    assert {x.value for x in run.conversions} == {None}


def test_a_control_win_back_converts_like_a_treated_one() -> None:
    """The control arm's conversions are what the uplift is measured against."""
    controlled = next(
        f"p{i}" for i in range(1000) if arm_of("win-back-90d", f"p{i}", 0.1) == "control"
    )
    c = History(controlled)
    c.purchase(0, 40.0)
    c.purchase(10, 40.0)
    c.visit(120)  # the clock passes day 100: the win-back fires
    buy = c.purchase(105, 60.0)  # a late upstream event, but after the trigger
    harness = Harness(RULES)
    harness.run(c.events[:3])
    win = [t for t in harness.triggers if t.rule_id == "win-back-90d"]
    assert [t.arm for t in win] == ["control"]
    outcome = decide([(0, buy)], harness.profiles, [], {0: harness.clock or 0}, RULES)
    assert [(x.rule_id, x.arm, x.value) for x in outcome.conversions] == [
        ("win-back-90d", "control", 60.0)
    ]


# ------------------------------------------------------------------ loader


@pytest.mark.parametrize(
    ("snippet", "line", "reason"),
    [
        ("    holdout: 0.7\n", 8, "holdout: expected a fraction from 0 to 0.5"),
        ("    holdout: yes\n", 8, "holdout: expected a fraction"),
        ("    goal: {types: [purchase]}\n", 8, "goal: needs 'types' and 'within'"),
        ("    goal: {types: [parcel], within: 7d}\n", 8, "goal.types: unknown event type"),
        ("    goal: {types: [purchase], within: soon}\n", 8, "goal.within"),
        ("    goal: {types: [purchase], within: 7d, if: x}\n", 8, "unknown key 'if'"),
        (
            "    goal:\n      types: [purchase]\n      within: 7d\n"
            "      when: event.properties.amount >\n",
            11,
            "goal.when",
        ),
        (
            "    goal: {types: [purchase], within: 7d, when: 'before.order_count > 1'}\n",
            8,
            "goal.when: reads the goal event",
        ),
    ],
)
def test_goal_and_holdout_mistakes_name_line_and_reason(
    snippet: str, line: int, reason: str
) -> None:
    text = (
        "rules:\n  - id: r1\n    version: 1\n    kind: nudge\n    on: event\n"
        "    types: [email_opened]\n    once_per: event\n" + snippet
    )
    with pytest.raises(RuleError) as info:
        load_rules_text(text, "pack.yaml")
    assert info.value.line == line, str(info.value)
    assert info.value.rule_id == "r1"
    assert reason in str(info.value)
    assert str(info.value).startswith(f"pack.yaml:{line}: rule 'r1':")


def test_the_default_pack_declares_its_goals_and_holdout() -> None:
    goals = {r.id: r.goal for r in RULES.rules if r.goal is not None}
    assert sorted(goals) == ["detractor-follow-up", "first-purchase-thank-you", "win-back-90d"]
    assert goals["win-back-90d"].types == ("purchase",)
    assert goals["win-back-90d"].within == 14 * DAY
    assert goals["detractor-follow-up"].within == 30 * DAY
    assert {r.id: r.holdout for r in RULES.rules if r.holdout} == {"win-back-90d": 0.1}


# ------------------------------------------------------------------ the report


def test_newcombe_interval_matches_the_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II example (a):
    56/70 against 48/80, difference 0.2000, method 10 interval 0.0524 to 0.3339."""
    found = uplift((56, 70), (48, 80))
    assert found is not None
    difference, low, high = found
    assert difference == pytest.approx(0.2)
    assert round(low, 4) == 0.0524
    assert round(high, 4) == 0.3339


def test_no_interval_without_both_arms() -> None:
    assert uplift((3, 10), (0, 0)) is None
    assert uplift((0, 0), (3, 10)) is None


def test_the_report_per_rule_and_arm() -> None:
    t = [
        TriggerEvent(f"t{i}", "r", 1, "k", f"c{i}", at(0), (), {}, arm)
        for i, arm in enumerate(["treatment"] * 70 + ["control"] * 80)
    ]
    conversions = [
        TriggerConverted(x.trigger_id, "r", x.arm, x.customer_id, "e", at(2), at(0), 10.0)
        for x in t[:56] + t[70:118]
    ]
    stats = tally(t, conversions)
    assert stats[("r", "treatment")].triggers == 70
    assert stats[("r", "control")].conversions == 48
    (rule,) = report(stats, ["r"])
    treatment, control = rule["arms"]
    assert treatment == {
        "arm": "treatment",
        "triggers": 70,
        "conversions": 56,
        "conversion_rate": 0.8,
        "revenue": 560.0,
        "mean_hours_to_convert": 48.0,
        "median_hours_to_convert": 48.0,
        "feedback": dict.fromkeys(["delivered", "opened", "clicked", "bounced", "failed"], 0),
    }
    assert control["conversion_rate"] == 0.6
    assert rule["uplift"] == {"difference": 0.2, "ci95": [0.0524, 0.3339], "method": "newcombe"}
    # a rule with nothing yet is listed, with no uplift
    empty = report({("r", "treatment"): ArmStats()}, ["r", "quiet"])
    assert [r["rule_id"] for r in empty] == ["r", "quiet"]
    assert empty[1]["uplift"] is None
