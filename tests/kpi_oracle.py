"""KPIs recomputed from scratch, the slow and obvious way, to check the deltas.

Independent of ``projections.kpis`` except for the metric names: it refolds
every customer's history and counts sets, where the processor keeps running
deltas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from events.model import DAY, Touchpoint
from projections.customer360 import lifecycle_stage
from projections.evolve import OUTBOUND, evolve, fold
from projections.kpis import FLOWS, MONEY_UNIT, period
from projections.profile import Profile

Facts = tuple[
    dict[tuple[int, str, str], list[int]],
    dict[tuple[str, int, str], int],
    dict[int, dict[str, int]],
]


def recompute(events: Iterable[Touchpoint], days: Iterable[int]) -> Facts:
    """(flows, active, customers per stage at the end of each of ``days``)."""
    history = list(events)
    flows: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0] * len(FLOWS))
    firsts: dict[tuple[str, int, str], tuple[int, str]] = {}
    profiles: dict[str, Profile] = {}
    for e in history:
        before = profiles.get(e.customer_id)
        after = evolve(before, e)
        profiles[e.customer_id] = after
        day = e.occurred_at // DAY
        stage = lifecycle_stage(after, e.occurred_at)
        row = flows[(day, e.channel, stage)]
        counts = dict.fromkeys(FLOWS, 0)
        counts["events"] = 1
        counts["new_customers"] = int(before is None)
        props = e.properties
        if e.type == "purchase":
            counts["purchases"] = 1
            counts["revenue_units"] = round(props["amount"] * MONEY_UNIT)
        if e.type == "refund":
            counts["refunds"] = 1
            counts["refund_units"] = round(props["amount"] * MONEY_UNIT)
        for kind, name in (
            ("email_sent", "emails_sent"),
            ("email_opened", "emails_opened"),
            ("email_clicked", "emails_clicked"),
            ("support_case_opened", "support_cases_opened"),
        ):
            counts[name] = int(e.type == kind)
        if e.type == "survey_response" and props["survey"] == "nps":
            counts["nps_responses"] = 1
            counts["nps_promoters"] = int(props["score"] >= 9)
            counts["nps_detractors"] = int(props["score"] <= 6)
        if e.type == "survey_response" and props["survey"] == "csat":
            counts["csat_responses"] = 1
            counts["csat_sum"] = props["score"]
        for i, name in enumerate(FLOWS):
            row[i] += counts[name]
        if e.type not in OUTBOUND:
            for grain in ("day", "week", "month", "all"):
                firsts.setdefault((grain, period(grain, day), e.customer_id), (day, stage))
    active: dict[tuple[str, int, str], int] = defaultdict(int)
    for (grain, number, _), (_, stage) in firsts.items():
        active[(grain, number, stage)] += 1
    by_customer: dict[str, list[Touchpoint]] = defaultdict(list)
    for e in history:
        by_customer[e.customer_id].append(e)
    stages: dict[int, dict[str, int]] = {}
    for day in days:
        instant = (day + 1) * DAY - 1
        counts_at: dict[str, int] = defaultdict(int)
        for customer_id, mine in by_customer.items():
            seen = [e for e in mine if e.occurred_at <= instant]
            if seen:
                counts_at[lifecycle_stage(fold(None, seen, customer_id), instant)] += 1
        stages[day] = dict(counts_at)
    return (
        {k: v for k, v in flows.items() if any(v)},
        dict(active),
        stages,
    )


def stage_counts(
    changes: dict[tuple[int, str], int], days: Iterable[int]
) -> dict[int, dict[str, int]]:
    """Customers per stage at the end of each day, from stored +1/-1 changes."""
    out: dict[int, dict[str, int]] = {}
    for day in days:
        counts: dict[str, int] = defaultdict(int)
        for (d, stage), n in changes.items():
            if d <= day:
                counts[stage] += n
        out[day] = {s: n for s, n in counts.items() if n}
    return out
