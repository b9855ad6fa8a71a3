"""The customer-360 view: the DESIGN.md contract, lifecycle stages and the score.

The keys and their types are a public contract that upstream tools parse, so
they are listed here by hand rather than read from the implementation.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.model import DAY, HOUR, SECOND, Touchpoint
from projections.customer360 import STAGES, customer_360, engagement_score, lifecycle_stage
from projections.evolve import fold
from projections.profile import Profile
from tests.unit.strategies import T0, histories

CID = "cust-1"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
NUMBER = (int, float)

# DESIGN.md "Customer-360 JSON": key -> the JSON types it may hold
CONTRACT: dict[str, tuple[type, ...]] = {
    "customer_id": (str,),
    "first_seen": (str, type(None)),
    "last_seen": (str, type(None)),
    "event_count": (int,),
    "counts_by_type": (dict,),
    "counts_by_channel": (dict,),
    "lifetime_spend": NUMBER,
    "order_count": (int,),
    "average_order_value": (*NUMBER, type(None)),
    "last_purchase_at": (str, type(None)),
    "email_sent": (int,),
    "email_opened": (int,),
    "email_clicked": (int,),
    "open_rate": (*NUMBER, type(None)),
    "click_rate": (*NUMBER, type(None)),
    "subscribed": (bool,),
    "nps_last": (int, type(None)),
    "nps_average": (*NUMBER, type(None)),
    "csat_last": (int, type(None)),
    "csat_average": (*NUMBER, type(None)),
    "survey_count": (int,),
    "support_cases": (int,),
    "open_support_cases": (int,),
    "engagement_score": NUMBER,
    "lifecycle_stage": (str,),
    "recent_touchpoints": (list,),
}
TIMESTAMPS = ("first_seen", "last_seen", "last_purchase_at")
RECENT_KEYS = {"event_id", "type", "channel", "occurred_at"}
CONTRACT_STAGES = {"prospect", "new", "active", "at_risk", "churned", "reactivated"}


def tp(event_id: str, type_: str, at: int, channel: str = "web", **properties: Any) -> Touchpoint:
    return Touchpoint(event_id, CID, type_, at, channel, properties=properties)


def purchase(event_id: str, at: int, amount: float = 10.0) -> Touchpoint:
    return tp(event_id, "purchase", at, order_id=event_id, amount=amount, currency="USD")


def visit(event_id: str, at: int) -> Touchpoint:
    return tp(event_id, "web_visit", at, url="https://shop.test/")


def check_contract(view: dict[str, Any]) -> None:
    assert set(CONTRACT) <= set(view)
    for key, types in CONTRACT.items():
        value = view[key]
        assert isinstance(value, types), (key, value)
        if bool not in types:
            assert not isinstance(value, bool), key  # a count is never true/false
    for key in TIMESTAMPS:
        assert view[key] is None or ISO_Z.match(view[key]), (key, view[key])
    for counts in (view["counts_by_type"], view["counts_by_channel"]):
        assert all(isinstance(k, str) for k in counts)
        assert all(type(n) is int and n > 0 for n in counts.values())
    assert sum(view["counts_by_type"].values()) == view["event_count"]
    assert sum(view["counts_by_channel"].values()) == view["event_count"]
    assert view["lifecycle_stage"] in CONTRACT_STAGES
    assert 0 <= view["engagement_score"] <= 100
    assert len(view["recent_touchpoints"]) <= 20
    for entry in view["recent_touchpoints"]:
        assert set(entry) == RECENT_KEYS
        assert all(isinstance(entry[k], str) for k in RECENT_KEYS)
        assert ISO_Z.match(entry["occurred_at"]), entry
    # the view is what `--json` and the HTTP API print
    assert orjson.loads(orjson.dumps(view)) == view


def test_stage_names_match_the_contract() -> None:
    assert set(STAGES) == CONTRACT_STAGES


def test_empty_profile_view() -> None:
    view = customer_360(Profile(CID), T0)
    check_contract(view)
    assert view["customer_id"] == CID
    for key in (
        *TIMESTAMPS,
        "average_order_value",
        "open_rate",
        "click_rate",
        "nps_last",
        "nps_average",
        "csat_last",
        "csat_average",
    ):
        assert view[key] is None, key
    assert view["event_count"] == 0
    assert view["counts_by_type"] == {} and view["counts_by_channel"] == {}
    assert view["lifetime_spend"] == 0
    assert view["subscribed"] is True
    assert view["engagement_score"] == 0
    assert view["lifecycle_stage"] == "prospect"
    assert view["recent_touchpoints"] == []


def test_full_profile_view() -> None:
    events = [
        tp("i", "identify", T0, "other", email="ann@x.test", name="Ann"),
        tp("s", "email_sent", T0 + 1 * SECOND, "email", campaign_id="c"),
        tp("o", "email_opened", T0 + 2 * SECOND, "email", campaign_id="c"),
        tp("k", "email_clicked", T0 + 3 * SECOND, "email", campaign_id="c"),
        purchase("p", T0 + HOUR + 123_456, 40.5),
        tp("n", "survey_response", T0 + 2 * HOUR, "survey", survey="nps", score=9),
        tp("q", "survey_response", T0 + 3 * HOUR, "survey", survey="csat", score=4),
        tp("c", "support_case_opened", T0 + 4 * HOUR, "support", case_id="k1"),
    ]
    view = customer_360(fold(None, events, CID), T0 + DAY)
    check_contract(view)
    assert view["first_seen"] == "2024-01-01T00:00:00Z"
    assert view["last_seen"] == "2024-01-01T04:00:00Z"
    assert view["last_purchase_at"] == "2024-01-01T01:00:00Z"  # always to the second
    assert view["counts_by_type"] == {
        "email_clicked": 1,
        "email_opened": 1,
        "email_sent": 1,
        "identify": 1,
        "purchase": 1,
        "support_case_opened": 1,
        "survey_response": 2,
    }
    assert view["counts_by_channel"] == {
        "email": 3,
        "other": 1,
        "support": 1,
        "survey": 2,
        "web": 1,
    }
    assert (view["lifetime_spend"], view["order_count"], view["average_order_value"]) == (
        40.5,
        1,
        40.5,
    )
    assert (view["open_rate"], view["click_rate"]) == (1.0, 1.0)
    assert (view["nps_last"], view["nps_average"], view["csat_last"], view["csat_average"]) == (
        9,
        9.0,
        4,
        4.0,
    )
    assert (view["survey_count"], view["support_cases"], view["open_support_cases"]) == (2, 1, 1)
    assert view["lifecycle_stage"] == "new"
    assert 0 < view["engagement_score"] <= 100
    assert [r["event_id"] for r in view["recent_touchpoints"]] == [
        "c",
        "q",
        "n",
        "p",
        "k",
        "o",
        "s",
        "i",
    ]


@given(histories(max_size=40), st.integers(0, 400 * DAY))
def test_every_view_keeps_the_contract(events: list[Touchpoint], later: int) -> None:
    p = fold(None, events, CID)
    now = max((e.occurred_at for e in events), default=T0) + later
    check_contract(customer_360(p, now))


def test_rates_and_average_are_none_without_data() -> None:
    visits = fold(None, [visit("v", T0)], CID)
    view = customer_360(visits, T0)
    assert view["average_order_value"] is None
    assert view["open_rate"] is None and view["click_rate"] is None
    # opens without a recorded send still have no rate: the denominator is sends
    opened = fold(None, [tp("o", "email_opened", T0, "email", campaign_id="c")], CID)
    assert customer_360(opened, T0)["open_rate"] is None
    # a refund is not an order
    refunded = fold(None, [tp("r", "refund", T0, order_id="o", amount=5.0)], CID)
    assert customer_360(refunded, T0)["average_order_value"] is None


def test_rates_and_average_with_data() -> None:
    events = [tp(f"s{i}", "email_sent", T0 + i, "email", campaign_id="c") for i in range(3)]
    events += [tp("o", "email_opened", T0 + 5, "email", campaign_id="c")]
    events += [purchase("p1", T0 + 10, 10.0), purchase("p2", T0 + 11, 25.0)]
    view = customer_360(fold(None, events, CID), T0 + DAY)
    assert view["open_rate"] == 0.3333
    assert view["click_rate"] == 0.0
    assert view["average_order_value"] == 17.5


# ---------------------------------------------------------------- lifecycle stages

US = 1  # one microsecond


def stage(events: list[Touchpoint], now: int) -> str:
    return lifecycle_stage(fold(None, events, CID), now)


@pytest.mark.parametrize("now", [T0, T0 + 29 * DAY, T0 + 1000 * DAY])
def test_prospect_without_a_purchase(now: int) -> None:
    events = [visit("v", T0), tp("o", "email_opened", T0 + HOUR, "email", campaign_id="c")]
    assert stage(events, now) == "prospect"
    assert stage([], now) == "prospect"


def test_a_refund_does_not_make_a_customer() -> None:
    assert stage([tp("r", "refund", T0, order_id="o", amount=1.0)], T0) == "prospect"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, "new"),
        (T0 + 29 * DAY, "new"),
        (T0 + 30 * DAY - US, "new"),
        (T0 + 30 * DAY, "at_risk"),
        (T0 + 90 * DAY - US, "at_risk"),
        (T0 + 90 * DAY, "churned"),
        (T0 + 400 * DAY, "churned"),
    ],
)
def test_one_purchase_then_silence(now: int, expected: str) -> None:
    assert stage([purchase("p", T0)], now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 + 30 * DAY - US, "new"),  # one purchase, still within 30 days of it
        (T0 + 30 * DAY, "active"),  # the purchase is 30 days old, but seen 10 days ago
        (T0 + 50 * DAY - US, "active"),
        (T0 + 50 * DAY, "at_risk"),
        (T0 + 110 * DAY, "churned"),
    ],
)
def test_one_purchase_and_later_visits(now: int, expected: str) -> None:
    assert stage([purchase("p", T0), visit("v", T0 + 20 * DAY)], now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 + 10 * DAY, "active"),  # two purchases: never "new"
        (T0 + 10 * DAY + 30 * DAY - US, "active"),
        (T0 + 10 * DAY + 30 * DAY, "at_risk"),
        (T0 + 10 * DAY + 90 * DAY, "churned"),
    ],
)
def test_repeat_buyer(now: int, expected: str) -> None:
    assert stage([purchase("p1", T0), purchase("p2", T0 + 10 * DAY)], now) == expected


@pytest.mark.parametrize("gap_days", [30, 45, 89, 90, 200])
def test_reactivated_after_being_at_risk_or_churned(gap_days: int) -> None:
    back = T0 + gap_days * DAY
    events = [purchase("p1", T0), purchase("p2", back)]
    assert stage(events, back) == "reactivated"
    assert stage(events, back + 29 * DAY) == "reactivated"
    # it lasts 30 days; kept visiting, the customer is then simply active
    events.append(visit("v", back + 25 * DAY))
    assert stage(events, back + 30 * DAY - US) == "reactivated"
    assert stage(events, back + 30 * DAY) == "active"
    # without those visits the customer is at risk again once the 30 days are up
    assert stage([purchase("p1", T0), purchase("p2", back)], back + 30 * DAY) == "at_risk"


def test_not_reactivated_when_the_gap_was_short() -> None:
    events = [purchase("p1", T0), purchase("p2", T0 + 30 * DAY - US)]
    assert stage(events, T0 + 30 * DAY) == "active"
    # a visit in between closes the gap: the customer was never at risk
    events = [purchase("p1", T0), visit("v", T0 + 20 * DAY), purchase("p2", T0 + 45 * DAY)]
    assert stage(events, T0 + 45 * DAY) == "active"


def test_sent_emails_do_not_keep_a_customer_active() -> None:
    events = [purchase("p", T0)]
    events += [tp(f"s{d}", "email_sent", T0 + d * DAY, "email", campaign_id="c") for d in (20, 40)]
    assert stage(events, T0 + 45 * DAY) == "at_risk"


@given(histories(max_size=30), st.integers(0, 200 * DAY))
def test_stage_agrees_with_the_contract_definitions(events: list[Touchpoint], later: int) -> None:
    p = fold(None, events, CID)
    now = max((e.occurred_at for e in events), default=T0) + later
    got = lifecycle_stage(p, now)
    if not any(e.type == "purchase" for e in events):
        assert got == "prospect"
        return
    seen = max(e.occurred_at for e in events if e.type != "email_sent")
    quiet = now - seen
    if quiet >= 90 * DAY:
        assert got == "churned"
    elif quiet >= 30 * DAY:
        assert got == "at_risk"
    else:
        assert got in {"new", "active", "reactivated"}
        buys = sorted(e.occurred_at for e in events if e.type == "purchase")
        if len(buys) == 1:  # reactivation needs a purchase after an earlier one
            assert got == ("new" if now - buys[0] < 30 * DAY else "active")
        else:
            assert got in {"active", "reactivated"}


# ---------------------------------------------------------------- engagement score


def test_engagement_score_is_zero_without_engaging_touchpoints() -> None:
    assert engagement_score(Profile(CID), T0) == 0
    sent_only = fold(None, [tp("s", "email_sent", T0, "email", campaign_id="c")], CID)
    assert engagement_score(sent_only, T0) == 0


def test_engagement_score_decays_over_time() -> None:
    p = fold(None, [purchase("p", T0), visit("v", T0 + HOUR)], CID)
    scores = [engagement_score(p, T0 + HOUR + d * DAY) for d in (0, 7, 30, 90, 365)]
    assert scores[0] > 0
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert scores[-1] < 1  # a year of silence leaves almost nothing


def test_more_engagement_scores_higher_but_never_over_100() -> None:
    few = fold(None, [visit("v", T0)], CID)
    many = fold(None, [purchase(f"p{i}", T0 + i * SECOND, 1.0) for i in range(200)], CID)
    assert engagement_score(few, T0) < engagement_score(many, T0) <= 100
    assert engagement_score(many, T0) >= 99


@given(histories(max_size=40), st.integers(0, 90 * DAY), st.integers(1, 365 * DAY))
def test_engagement_score_is_bounded_and_never_grows_with_time(
    events: list[Touchpoint], later: int, more: int
) -> None:
    p = fold(None, events, CID)
    start = max((e.occurred_at for e in events), default=T0) + later
    now_score = engagement_score(p, start)
    later_score = engagement_score(p, start + more)
    assert 0 <= later_score <= now_score <= 100
    if now_score >= 1 and more >= 180 * DAY:
        assert later_score < now_score
    assert customer_360(p, start)["engagement_score"] == now_score
