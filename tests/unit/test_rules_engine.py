"""Rule shapes and controls beyond the default pack, and the timer contract."""

from __future__ import annotations

import orjson

from events.model import DAY
from projections.profile import Profile
from rules import RuleSet, due_timers, fire_timer, load_rules_text
from rules.harness import Harness, replay
from tests.unit.test_rules_support import History, at, fold

STAGES = """\
rules:
  - id: enters-at-risk
    version: 1
    kind: churn_risk
    on: timer
    due: last_seen + 30d
    enters: at_risk
  - id: becomes-churned
    version: 1
    kind: churn_risk
    on: timer
    due: last_seen + 90d
    enters: churned
  - id: reactivated
    version: 3
    kind: win_back
    on: event
    types: [purchase]
    enters: reactivated
    when: before.lifecycle_stage in ['at_risk', 'churned']
    details: {was: before.lifecycle_stage}
"""


def test_lifecycle_stage_changes() -> None:
    rules = load_rules_text(STAGES)
    h = History()
    h.purchase(0, 10)
    h.purchase(5, 10)
    comeback = h.purchase(120, 10)  # at_risk on day 35, churned on day 95, back on day 120
    h.purchase(125, 10)  # still reactivated: no new trigger
    harness = replay(rules, h.events, until=at(300))
    assert [(t.rule_id, t.fired_at) for t in harness.triggers] == [
        ("enters-at-risk", at(35)),
        ("becomes-churned", at(95)),
        ("reactivated", comeback.occurred_at),
        ("enters-at-risk", at(155)),
        ("becomes-churned", at(215)),
    ]
    assert harness.triggers[2].details == {"lifecycle_stage": "reactivated", "was": "churned"}
    assert harness.triggers[2].rule_version == 3


def test_a_prospect_never_enters_at_risk() -> None:
    h = History()
    h.visit(0)
    assert replay(load_rules_text(STAGES), h.events, until=at(300)).triggers == []


CAPPED = """\
frequency_cap: {count: 3, window: 7d}
rules:
  - id: every-visit
    version: 1
    kind: browse
    on: event
    types: [web_visit]
  - id: quiet-buyer
    version: 1
    kind: win_back
    on: timer
    due: last_purchase_at + 10d
  - id: support
    version: 1
    kind: feedback_request
    audience: service
    on: event
    types: [web_visit]
"""


def test_cap_applies_across_marketing_rules_and_spends_the_timer() -> None:
    rules = load_rules_text(CAPPED)
    h = History()
    h.purchase(0, 10)
    for day in (5, 6, 7, 8):  # three fire, the fourth is capped; service is never capped
        h.visit(day)
    harness = replay(rules, h.events, until=at(100))
    marketing = [t for t in harness.triggers if t.rule_id != "support"]
    assert [(t.rule_id, t.fired_at) for t in marketing] == [
        ("every-visit", at(5)),
        ("every-visit", at(6)),
        ("every-visit", at(7)),
    ]  # quiet-buyer due on day 10 is capped too, and is not retried later
    assert sum(t.rule_id == "support" for t in harness.triggers) == 4
    assert "quiet-buyer" not in harness.armed["c1"]
    profile = harness.profiles["c1"]
    assert profile.rule_state["quiet-buyer"]["spent"] == at(10)
    assert fire_timer(rules, "quiet-buyer", profile, at(10)) == []


def test_fire_timer_contract() -> None:
    rules = load_rules_text(CAPPED)
    h = History()
    h.purchase(0, 10)
    profile = fold(h.events)
    assert profile is not None
    assert due_timers(rules, profile) == [("quiet-buyer", at(10))]
    assert fire_timer(rules, "quiet-buyer", profile, at(9)) == []  # not the armed instant
    assert fire_timer(rules, "no-such-rule", profile, at(10)) == []  # rule removed since
    (trigger,) = fire_timer(rules, "quiet-buyer", profile, at(10))
    assert (trigger.fired_at, trigger.caused_by) == (at(10), (h.events[0].event_id,))
    assert fire_timer(rules, "quiet-buyer", profile, at(10)) == []  # redelivered: once
    assert due_timers(rules, profile) == []
    # a purchase before due re-arms to a later instant; the old instant is stale
    h.purchase(8, 10)
    moved = fold(h.events)
    assert moved is not None
    assert due_timers(rules, moved) == [("quiet-buyer", at(18))]
    assert fire_timer(rules, "quiet-buyer", moved, at(10)) == []


ONCE_AND_DOWN = """\
rules:
  - id: lapsed-once
    version: 1
    kind: churn_risk
    on: timer
    due: last_seen + 10d
    once_per: customer
  - id: spend-drops
    version: 1
    kind: spend_drop
    on: event
    types: [refund]
    crosses: {field: lifetime_spend, at: 100, direction: down}
  - id: late-night
    version: 1
    kind: note
    on: event
    types: [web_visit]
    when: now - after.first_seen >= 5 * 86400000000
    once_per: customer
"""


def test_once_per_customer_timer_crossing_down_and_now() -> None:
    rules = load_rules_text(ONCE_AND_DOWN)
    h = History()
    h.purchase(0, 150)
    h.refund(1, 20)  # 130: above
    drop = h.refund(2, 40)  # 90: crosses down
    h.refund(3, 10)  # 80: still below, no fire
    h.visit(4)  # not yet five days after first seen
    h.visit(30)  # lapsed-once fired on day 14 (10 days after day 4); once per customer
    h.visit(31)
    harness = replay(rules, h.events, until=at(200))
    assert [(t.rule_id, t.fired_at) for t in harness.triggers] == [
        ("spend-drops", drop.occurred_at),
        ("lapsed-once", at(14)),
        ("late-night", at(30)),
    ]
    assert harness.triggers[0].details == {"lifetime_spend": 90.0, "threshold": 100}


def test_state_survives_a_json_store_round_trip() -> None:
    """Profiles go through the store as JSON between batches: same triggers."""
    rules = load_rules_text(CAPPED)
    h = History()
    h.purchase(0, 10)
    for day in (5, 6, 7, 8, 30, 31):
        h.visit(day)
    plain = replay(rules, h.events, until=at(60)).triggers
    harness = Harness(rules)
    for event in h.events:
        harness.feed(event)
        for cid, profile in harness.profiles.items():
            harness.profiles[cid] = Profile.from_state(
                orjson.loads(orjson.dumps(profile.to_state()))
            )
    harness.advance(at(60))
    assert harness.triggers == plain


def test_quiet_spell_key_is_the_anchor() -> None:
    rules = load_rules_text(CAPPED)
    h = History()
    h.purchase(0, 10)
    profile = fold(h.events)
    assert profile is not None
    fire_timer(rules, "quiet-buyer", profile, at(10))
    assert profile.rule_state["quiet-buyer"]["keys"] == [str(at(0))]
    assert profile.rule_state["quiet-buyer"]["n"] == 1
    assert profile.rule_state["~cap"] == [at(10)]


def test_rule_set_index() -> None:
    rules: RuleSet = load_rules_text(CAPPED)
    assert [r.id for r in rules.by_type["web_visit"]] == ["every-visit", "support"]
    assert [r.id for r in rules.timer_rules] == ["quiet-buyer"]
    assert rules.by_id["support"].audience == "service"
    assert DAY == 86_400_000_000  # the literal used in ONCE_AND_DOWN
