"""KPI deltas: kept per batch, they add up to the KPIs recomputed from scratch."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import DAY, EVENT_TYPES, HOUR, Touchpoint, TriggerEvent
from projections.customer360 import lifecycle_stage
from projections.evolve import apply
from projections.kpis import FLOWS, KpiBatch, KpiDelta, period, period_start, report, stage_steps
from projections.profile import Profile
from tests.kpi_oracle import recompute, stage_counts

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, a Thursday

_PROPS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "purchase": st.fixed_dictionaries(
        {"order_id": st.just("o"), "amount": st.sampled_from([0.1, 5.0, 49.99, 200.0, 450.35])}
    ),
    "refund": st.fixed_dictionaries({"order_id": st.just("o"), "amount": st.just(12.34)}),
    "email_sent": st.just({"campaign_id": "n"}),
    "email_opened": st.just({"campaign_id": "n"}),
    "email_clicked": st.just({"campaign_id": "n"}),
    "web_visit": st.just({"url": "u"}),
    "support_case_opened": st.just({"case_id": "a"}),
    "survey_response": st.fixed_dictionaries(
        {
            "survey": st.sampled_from(["nps", "csat"]),
            "score": st.integers(1, 5) | st.integers(0, 10),
        }
    ),
}


@st.composite
def histories(draw: st.DrawFn) -> list[Touchpoint]:
    """In-order histories of a few customers with gaps long enough to cross
    every stage boundary (30 and 90 days quiet, reactivation)."""
    n = draw(st.integers(1, 40))
    events: list[Touchpoint] = []
    t = T0
    for i in range(n):
        t += draw(st.sampled_from([0, 1, 5, 20, 24 * 9, 24 * 31, 24 * 95])) * HOUR
        kind = draw(st.sampled_from(list(_PROPS)))
        if kind == "survey_response":
            props = draw(_PROPS[kind])
            if props["survey"] == "csat":
                props["score"] = max(1, min(5, props["score"]))
        else:
            props = dict(draw(_PROPS[kind]))
        events.append(
            Touchpoint(
                event_id=f"e{i}",
                customer_id=draw(st.sampled_from(["a", "b", "c"])),
                type=kind,
                occurred_at=t,
                channel=draw(st.sampled_from([EVENT_TYPES[kind][2], "app"])),
                properties=props,
            )
        )
    return events


def incremental(events: list[Touchpoint], cuts: list[int]) -> KpiDelta:
    """What the pipeline does: per batch, per customer, fold and observe; sum the batches."""
    profiles: dict[str, Profile] = {}
    total = KpiDelta()
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        batch = KpiBatch()
        by_customer: dict[str, list[Touchpoint]] = {}
        for e in events[start:end]:
            by_customer.setdefault(e.customer_id, []).append(e)
        for customer_id, mine in by_customer.items():
            profile = profiles.get(customer_id) or Profile(customer_id)
            batch.customer(profile)
            for e in mine:
                apply(profile, e)
                batch.observe(profile, e)
            profiles[customer_id] = profile
        total.merge(batch.finish())
    return total.pruned()


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(0, 40), max_size=6))
def test_incremental_equals_recomputed_from_scratch(
    events: list[Touchpoint], cuts: list[int]
) -> None:
    delta = incremental(events, cuts)
    first = events[0].occurred_at // DAY
    days = list(range(first - 1, events[-1].occurred_at // DAY + 200))
    flows, active, stages = recompute(events, days)
    assert delta.flows == flows
    assert delta.active == active
    assert stage_counts(delta.stages, days) == {d: c for d, c in stages.items()}


def test_stage_steps_follow_the_view() -> None:
    p = Profile("a")
    apply(
        p,
        Touchpoint("e1", "a", "purchase", T0, "web", properties={"order_id": "o", "amount": 5.0}),
    )
    steps = stage_steps((p.order_count, p.last_seen, p.first_purchase_at, p.reactivated_at), T0)
    assert steps == [(T0, "new"), (T0 + 30 * DAY, "at_risk"), (T0 + 90 * DAY, "churned")]
    for at, stage in steps:
        assert lifecycle_stage(p, at) == stage


def test_periods() -> None:
    day = T0 // DAY
    assert period_start("week", period("week", day)).isoformat() == "2025-12-29"  # a Monday
    assert period_start("month", period("month", day + 40)).isoformat() == "2026-02-01"
    assert period_start("day", period("day", day)).isoformat() == "2026-01-01"


def test_report_rolls_up_to_the_business() -> None:
    batch = KpiBatch()
    p = Profile("a")
    batch.customer(p)
    for i, (kind, props, channel) in enumerate(
        [
            ("purchase", {"order_id": "o1", "amount": 100.0}, "web"),
            ("purchase", {"order_id": "o2", "amount": 50.0}, "store"),
            ("email_sent", {"campaign_id": "c"}, "email"),
            ("email_opened", {"campaign_id": "c"}, "email"),
            ("survey_response", {"survey": "nps", "score": 10}, "survey"),
            ("survey_response", {"survey": "nps", "score": 3}, "survey"),
        ]
    ):
        e = Touchpoint(f"e{i}", "a", kind, T0 + i * HOUR, channel, properties=props)
        apply(p, e)
        batch.observe(p, e)
    batch.count_triggers(
        [TriggerEvent("t", "first-purchase-thank-you", 1, "thank_you", "a", T0, ("e0",), {})]
    )
    d = batch.finish()
    out = report(
        "week",
        T0 + 6 * HOUR,
        [(k[0], k[1], k[2], v) for k, v in d.flows.items()],
        [(*k, n) for k, n in d.active.items()],
        [(*k, n) for k, n in d.stages.items()],
        [(*k, n) for k, n in d.triggers.items()],
    )
    total = out["total"]
    business = total["business"]
    assert business["purchases"] == 2 and business["revenue"] == 150.0
    assert business["average_order_value"] == 75.0
    assert business["open_rate"] == 1.0 and business["nps"] == 0.0
    assert business["active_customers"] == 1 and business["new_customers"] == 1
    assert total["by_channel"]["web"]["revenue"] == 100.0
    assert sum(c["events"] for c in total["by_channel"].values()) == business["events"] == 6
    assert sum(s["events"] for s in total["by_stage"].values()) == 6
    assert total["customers_by_stage"]["active"] == 1
    assert total["triggers_by_rule"] == {"first-purchase-thank-you": 1}
    assert [p["period"] for p in out["periods"]] == ["2025-12-29"]
    assert len(FLOWS) == 15


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(0, 40), max_size=6), st.randoms(use_true_random=False))
def test_out_of_order_stage_counts_stay_whole(
    events: list[Touchpoint], cuts: list[int], rnd: Any
) -> None:
    """Late events make stage history approximate (documented), but never lose or
    double a customer: at the end of every day each customer seen so far is in
    exactly one stage."""
    shuffled = list(events)
    rnd.shuffle(shuffled)
    delta = incremental(shuffled, cuts)
    first_seen: dict[str, int] = {}
    for e in shuffled:
        first_seen.setdefault(e.customer_id, e.occurred_at // DAY)
    days = range(min(first_seen.values()) - 1, max(e.occurred_at for e in events) // DAY + 200)
    for day, counts in stage_counts(delta.stages, days).items():
        assert all(n >= 0 for n in counts.values()), (day, counts)
        assert sum(counts.values()) == sum(1 for d in first_seen.values() if d <= day)
