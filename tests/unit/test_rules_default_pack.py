"""The default pack on crafted histories: each rule and control of DESIGN.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest

from events.model import DAY, Micros, Touchpoint, TriggerEvent
from projections.evolve import evolve
from projections.profile import Profile
from rules import RuleSet, default_rules, evaluate, trigger_id
from rules.harness import Harness, replay
from tests.unit.test_rules_support import History, at

Evaluator = Callable[[Profile | None, Profile, Touchpoint, Micros], list[TriggerEvent]]
"""The shape the pipeline calls: (before, after, event, now) -> triggers."""


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


def fired(triggers: list[TriggerEvent], rule_id: str | None = None) -> list[TriggerEvent]:
    return [t for t in triggers if rule_id is None or t.rule_id == rule_id]


def by_rule(triggers: list[TriggerEvent]) -> Counter[str]:
    return Counter(t.rule_id for t in triggers)


def test_pack_has_the_contract_ids_kinds_and_audiences(rules: RuleSet) -> None:
    assert {r.id: (r.kind, r.audience) for r in rules.rules} == {
        "first-purchase-thank-you": ("thank_you", "marketing"),
        "lifetime-spend-1000": ("spend_threshold", "marketing"),
        "monthly-spend-500": ("spend_threshold", "marketing"),
        "newsletter-fatigue": ("churn_risk", "marketing"),
        "predicted-churn": ("churn_risk", "marketing"),
        "inactive-30d": ("churn_risk", "marketing"),
        "win-back-90d": ("win_back", "marketing"),
        "feedback-after-support": ("feedback_request", "service"),
        "detractor-follow-up": ("service_recovery", "service"),
    }
    assert {r.id for r in rules.timer_rules} == {"inactive-30d", "win-back-90d", "predicted-churn"}
    assert "web_visit" not in rules.by_type  # indexed: most events meet no rule


def test_first_purchase_thank_you_once(rules: RuleSet) -> None:
    h = History()
    first = h.purchase(0, 20)
    h.purchase(1, 30)
    h.purchase(2, 40)
    triggers = fired(replay(rules, h.events).triggers, "first-purchase-thank-you")
    assert len(triggers) == 1
    t = triggers[0]
    assert (t.fired_at, t.caused_by, t.kind) == (first.occurred_at, (first.event_id,), "thank_you")
    assert t.details == {"order_id": first.properties["order_id"], "amount": 20.0}


def test_lifetime_spend_crossing_fires_once(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 600)
    h.purchase(40, 300)
    crossing = h.purchase(80, 200)  # 1100: crosses here
    h.purchase(100, 50)  # above: no fire
    h.refund(101, 500)  # dips below
    h.purchase(102, 600)  # crosses again, but once per customer
    triggers = fired(replay(rules, h.events).triggers, "lifetime-spend-1000")
    assert [t.caused_by for t in triggers] == [(crossing.event_id,)]
    assert triggers[0].details == {"lifetime_spend": 1100.0, "threshold": 1000}


def test_monthly_spend_crossing_respects_its_cooldown(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 300)
    first = h.purchase(10, 250)  # 550 in 30 days: crosses
    h.purchase(12, 100)  # still above: no fire
    h.purchase(45, 300)  # day 45 window: 300 (the day 10/12 ones aged out)
    h.purchase(50, 300)  # 600: crosses again 40 days after: cooldown 30d passed
    h.purchase(85, 600)  # window (55, 85]: 600, crosses; 35 days after day 50
    triggers = fired(replay(rules, h.events).triggers, "monthly-spend-500")
    assert [t.fired_at for t in triggers] == [first.occurred_at, at(50), at(85)]
    assert triggers[0].details == {"purchases_30d": 550.0, "threshold": 500}


def test_monthly_spend_second_crossing_inside_cooldown_is_held(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 600)  # crosses on day 0
    h.refund(1, 0)
    h.purchase(31, 100)  # the day 0 purchase aged out: below
    h.purchase(29.5, 0)  # late, no change
    h.purchase(20, 450)  # out of order: window at day 20 is 1050 (no crossing from 600)
    triggers = fired(replay(rules, h.events).triggers, "monthly-spend-500")
    assert [t.fired_at for t in triggers] == [at(0)]


def test_newsletter_fatigue_fires_once_then_respects_cooldown(rules: RuleSet) -> None:
    h = History()
    for day in range(0, 50, 10):  # opens on days 0..40: the fifth fires
        h.opened(day)
    for day in range(45, 140, 5):  # keeps opening, never clicks
        h.opened(day)
    triggers = fired(replay(rules, h.events).triggers, "newsletter-fatigue")
    # held by the 90-day cooldown until day 130, then fires once more
    assert [t.fired_at for t in triggers] == [at(40), at(130)]
    assert triggers[0].details == {"opens_60d": 5, "clicks_60d": 0}


def test_newsletter_fatigue_not_when_a_click_is_in_the_window(rules: RuleSet) -> None:
    h = History()
    h.clicked(0)
    for day in range(1, 40, 5):
        h.opened(day)
    assert fired(replay(rules, h.events).triggers, "newsletter-fatigue") == []
    for day in range(61, 70):  # the click is now more than 60 days back
        h.opened(day)
    assert [t.fired_at for t in fired(replay(rules, h.events).triggers, "newsletter-fatigue")] == [
        at(61)
    ]


def test_unsubscribed_gets_no_marketing_but_still_service(rules: RuleSet) -> None:
    h = History()
    h.unsubscribe(0)
    h.purchase(1, 2000)  # thank-you, lifetime and monthly would all fire
    for day in range(2, 30, 3):
        h.opened(day)
    h.case_closed(31, "case-1")
    h.survey(32, 3)
    harness = replay(rules, h.events, until=at(400))  # timers would fire too
    assert by_rule(harness.triggers) == {"feedback-after-support": 1, "detractor-follow-up": 1}
    h.subscribe(500)
    h.purchase(501, 10)
    harness = replay(rules, h.events)
    assert by_rule(harness.triggers)["monthly-spend-500"] == 0  # 10 is no crossing
    assert harness.profiles["c1"].subscribed


def test_unsubscribe_event_itself_blocks_marketing(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 10)
    h.unsubscribe(5)
    harness = replay(rules, h.events, until=at(200))
    assert by_rule(harness.triggers) == {"first-purchase-thank-you": 1}  # no inactivity timer


def test_inactivity_timer_fires_at_due_instant_with_no_further_event(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 20)
    last = h.visit(3.5)
    harness = Harness(rules)
    harness.run(h.events)
    due = last.occurred_at + 30 * DAY
    assert harness.armed["c1"]["inactive-30d"] == due
    assert harness.advance(due) == []  # due exactly at the clock: not yet
    (trigger,) = harness.advance(due + 1)
    assert trigger.rule_id == "inactive-30d"
    assert (trigger.fired_at, trigger.caused_by) == (due, (last.event_id,))
    assert trigger.details["due"] == "2026-02-03T12:00:00Z"
    assert trigger.details["order_count"] == 1
    assert harness.advance(at(80)) == []  # once per quiet spell
    assert "inactive-30d" not in harness.armed["c1"]


def test_other_customers_events_move_the_clock_and_fire_timers(rules: RuleSet) -> None:
    a, b = History("a"), History("b")
    a.purchase(0, 10)
    b.visit(45)
    harness = replay(rules, [*a.events, *b.events])
    assert [(t.customer_id, t.rule_id, t.fired_at) for t in harness.triggers[1:]] == [
        ("a", "inactive-30d", at(30))
    ]


def test_a_touchpoint_before_due_rearms_the_inactivity_timer(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 20)
    h.opened(29)  # one day before due
    harness = replay(rules, h.events, until=at(58))
    assert fired(harness.triggers, "inactive-30d") == []
    assert harness.armed["c1"]["inactive-30d"] == at(59)
    h.visit(70)  # after the re-armed due: fires at day 59 before this visit is folded
    harness = replay(rules, h.events)
    assert [t.fired_at for t in fired(harness.triggers, "inactive-30d")] == [at(59)]
    harness.advance(at(200))  # a new quiet spell after day 70 fires again
    assert [t.fired_at for t in fired(harness.triggers, "inactive-30d")] == [at(59), at(100)]


def test_prospects_arm_no_inactivity_timer(rules: RuleSet) -> None:
    h = History()
    h.visit(0)
    harness = replay(rules, h.events, until=at(365))
    assert harness.triggers == []
    assert harness.armed["c1"] == {}


def test_win_back_after_two_purchases_and_ninety_quiet_days(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 20)
    second = h.purchase(10, 20)
    h.visit(50)  # browsing is not buying: win-back stays armed on last_purchase_at
    harness = replay(rules, h.events, until=at(200))
    (win_back,) = fired(harness.triggers, "win-back-90d")
    assert (win_back.fired_at, win_back.caused_by) == (at(100), (second.event_id,))
    assert win_back.kind == "win_back"
    assert win_back.details["last_purchase_at"] == "2026-01-11T00:00:00Z"


def test_no_win_back_for_a_one_time_buyer(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 20)
    assert fired(replay(rules, h.events, until=at(300)).triggers, "win-back-90d") == []


def test_feedback_once_per_case_id(rules: RuleSet) -> None:
    h = History()
    h.case_closed(0, "case-1")
    h.case_closed(1, "case-1")  # closed again (reopened and closed)
    h.case_closed(2, "case-2")
    triggers = fired(replay(rules, h.events).triggers, "feedback-after-support")
    assert [t.details["case_id"] for t in triggers] == ["case-1", "case-2"]


def test_detractor_follow_up(rules: RuleSet) -> None:
    h = History()
    detractor = h.survey(0, 6)
    h.survey(1, 7)
    h.survey(2, 2, survey="csat")
    h.survey(3, 0)
    triggers = fired(replay(rules, h.events).triggers, "detractor-follow-up")
    assert [t.details for t in triggers] == [
        {"survey": "nps", "score": 6},
        {"survey": "nps", "score": 0},
    ]
    assert triggers[0].caused_by == (detractor.event_id,)


def test_frequency_cap_three_marketing_triggers_in_seven_days(rules: RuleSet) -> None:
    h = History()
    h.purchase(0, 1200)  # thank-you + lifetime + monthly: three marketing triggers
    for day in (0.1, 1, 2, 3, 4):  # fatigue on day 4: capped
        h.opened(day)
    h.case_closed(4.5, "case-1")  # service ignores the cap
    h.opened(7.5)  # the window of day 0 has passed: fatigue fires now
    triggers = replay(rules, h.events).triggers
    assert by_rule(triggers) == {
        "first-purchase-thank-you": 1,
        "lifetime-spend-1000": 1,
        "monthly-spend-500": 1,
        "feedback-after-support": 1,
        "newsletter-fatigue": 1,
    }
    assert fired(triggers, "newsletter-fatigue")[0].fired_at == at(7.5)


def test_trigger_ids_are_deterministic(rules: RuleSet) -> None:
    h = History()
    event = h.purchase(0, 20)
    first = replay(rules, h.events, until=at(100)).triggers
    second = replay(rules, h.events, until=at(100)).triggers
    assert first == second
    thank_you = fired(first, "first-purchase-thank-you")[0]
    expected = trigger_id("first-purchase-thank-you", 1, "c1", f"event:{event.event_id}")
    assert thank_you.trigger_id == expected
    assert len({t.trigger_id for t in first}) == len(first)
    other = History("c2")
    other.purchase(0, 20)
    assert replay(rules, other.events).triggers[0].trigger_id != thank_you.trigger_id


def test_evaluate_fits_the_evaluator_shape_and_leaves_before_alone(rules: RuleSet) -> None:
    evaluator: Evaluator = partial(evaluate, rules)
    h = History()
    e1, e2 = h.purchase(0, 900), h.purchase(1, 200)
    before = evolve(None, e1)
    before.rule_state = {"lifetime-spend-1000": {"n": 0}}
    snapshot = dict(before.rule_state)
    after = evolve(before, e2)
    triggers = evaluator(before, after, e2, at(500))  # a later clock changes nothing
    assert [t.rule_id for t in triggers] == ["lifetime-spend-1000"]
    assert before.rule_state == snapshot
    assert after.rule_state["lifetime-spend-1000"]["n"] == 1
