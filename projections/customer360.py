"""The customer-360 JSON of DESIGN.md, derived from the stored state and a clock.

Lifecycle stage, engagement score and the predictions (``p_alive``,
``expected_purchases_90d``, ``predicted_clv_365d``, ``churn_risk``) are judged
against the processor's clock (the latest event time seen, or ``--now``),
which is passed in, with the fitted model in effect: the view is as pure as
the fold, so ``--as-of`` and replays give the same answers.
"""

from __future__ import annotations

import math
from typing import Any, Final

from events.model import DAY, Micros
from events.timefmt import format_iso, format_optional
from projections.evolve import DECAY
from projections.predictions import Model, Predictions, predict
from projections.profile import Profile

STAGES: Final = ("prospect", "new", "active", "at_risk", "churned", "reactivated")
QUIET: Final = 30 * DAY
"""Seen this long ago: at risk; also how long "new" and "reactivated" last."""
CHURNED: Final = 90 * DAY
ENGAGEMENT_SCALE: Final = 20.0


def lifecycle_stage(p: Profile, now: Micros) -> str:
    return stage_at(p.order_count, p.last_seen, p.first_purchase_at, p.reactivated_at, now)


def stage_at(
    order_count: int,
    last_seen: Micros | None,
    first_purchase_at: Micros | None,
    reactivated_at: Micros | None,
    now: Micros,
) -> str:
    """The stage from the only four fields it depends on, so the KPI deltas
    (``projections.kpis``) can judge a profile's stage before and after an
    event without copying the profile, with this one definition."""
    if order_count == 0 or last_seen is None:
        return "prospect"
    quiet = now - last_seen
    if quiet >= CHURNED:
        return "churned"
    if quiet >= QUIET:
        return "at_risk"
    if reactivated_at is not None and now - reactivated_at < QUIET:
        return "reactivated"
    if order_count == 1 and first_purchase_at is not None and now - first_purchase_at < QUIET:
        return "new"
    return "active"


def engagement_score(p: Profile, now: Micros) -> float:
    """0–100: the decayed weighted activity, squashed so a few touchpoints a
    month reads as engaged and a burst cannot exceed 100."""
    if p.engagement_at is None:
        return 0.0
    decayed = p.engagement_raw * math.exp(-DECAY * max(0, now - p.engagement_at))
    return round(100.0 * (1.0 - math.exp(-decayed / ENGAGEMENT_SCALE)), 1)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


def _average(total: float, count: int) -> float | None:
    return None if count == 0 else round(total / count, 2)


def predictions(p: Profile, now: Micros, model: Model | None) -> Predictions | None:
    """BG/NBD and Gamma-Gamma at ``now``: None without a fitted model, without
    a purchase, or for a profile stored before its purchase days were kept."""
    days = p.purchase_days
    first, last = p.first_purchase_at, p.last_purchase_at
    if model is None or not days or first is None or last is None:
        return None
    return predict(len(days) - 1, first, last, p.mean_repeat_value, now, model.params)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def customer_360(p: Profile, now: Micros, model: Model | None = None) -> dict[str, Any]:
    """The contract's customer-360 object (field names are a public contract)."""
    predicted = predictions(p, now, model)
    clv = None if predicted is None else _round(predicted.predicted_clv_365d, 2)
    return {
        "customer_id": p.customer_id,
        "first_seen": format_optional(p.first_seen),
        "last_seen": format_optional(p.last_seen),
        "event_count": p.event_count,
        "counts_by_type": dict(sorted(p.counts_by_type.items())),
        "counts_by_channel": dict(sorted(p.counts_by_channel.items())),
        "custom_counts": dict(sorted(p.custom_counts.items())),
        "lifetime_spend": p.lifetime_spend,
        "order_count": p.order_count,
        "average_order_value": _average(p.purchase_total, p.order_count),
        "last_purchase_at": format_optional(p.last_purchase_at),
        "email_sent": p.email_sent,
        "email_opened": p.email_opened,
        "email_clicked": p.email_clicked,
        "open_rate": _ratio(p.email_opened, p.email_sent),
        "click_rate": _ratio(p.email_clicked, p.email_sent),
        "subscribed": p.subscribed,
        "nps_last": p.nps_last,
        "nps_average": _average(p.nps_sum, p.nps_count),
        "csat_last": p.csat_last,
        "csat_average": _average(p.csat_sum, p.csat_count),
        "survey_count": p.survey_count,
        "support_cases": p.support_cases,
        "open_support_cases": p.open_support_cases,
        "engagement_score": engagement_score(p, now),
        "lifecycle_stage": lifecycle_stage(p, now),
        "recent_touchpoints": [
            {"event_id": eid, "type": typ, "channel": ch, "occurred_at": format_iso(t)}
            for eid, typ, ch, t in reversed(p.recent)
        ],
        # additions beyond the contract (allowed: add fields, rename none)
        "first_purchase_at": format_optional(p.first_purchase_at),
        "refund_total": round(p.refund_total, 2),
        "email": p.identity.get("email"),
        "name": p.identity.get("name"),
        "as_of": format_iso(now),
        "p_alive": None if predicted is None else predicted.p_alive,
        "expected_purchases_90d": (
            None if predicted is None else round(predicted.expected_purchases_90d, 4)
        ),
        "predicted_clv_365d": clv,
        "churn_risk": None if predicted is None else predicted.churn_risk,
        "repeat_purchases": p.repeat_purchases,
        "model_version": None if predicted is None or model is None else model.version,
    }
