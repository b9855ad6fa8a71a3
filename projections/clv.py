"""Predicted lifetime value per lifecycle stage, for ``engage kpis``.

Unlike the other KPIs this cannot be kept as running deltas: every customer's
prediction moves with the clock. So it is computed when asked, from a few
fields of every profile with a purchase, with NumPy and SciPy over the whole
population at once (``model_fit.expected_purchases_array``): the same BG/NBD
and Gamma-Gamma closed forms as each customer-360's ``predicted_clv_365d``,
judged at the same clock with the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from events.model import Micros
from events.timefmt import format_iso
from projections.customer360 import STAGES, stage_at
from projections.model_fit import Customers, expected_purchases_array
from projections.predictions import CLV_HORIZON_DAYS, UNIT, Model

ClvRow = tuple[int, Micros | None, Micros | None, Micros | None, Micros, int | None, float, float]
"""(order_count, last_seen, first_purchase_at, reactivated_at, last_purchase_at,
distinct purchase days or None when unknown, purchase_total, first_day_total)."""


def clv_by_stage(rows: Sequence[ClvRow], clock: Micros, model: Model) -> dict[str, Any]:
    """Customers, total and mean predicted 365-day value per stage and overall."""
    known = [r for r in rows if r[5] and r[2] is not None]
    stages = [stage_at(r[0], r[1], r[2], r[3], clock) for r in known]
    if known:
        days = np.array([r[5] for r in known], dtype=np.float64)
        first = np.array([r[2] for r in known], dtype=np.float64)
        last = np.array([r[4] for r in known], dtype=np.float64)
        total = np.array([r[6] for r in known], dtype=np.float64)
        first_day = np.array([r[7] for r in known], dtype=np.float64)
        x = days - 1
        t_x = np.where(x > 0, (last - first) / UNIT, 0.0)
        T = (np.maximum(clock, last) - first) / UNIT
        mean = np.where(x > 0, (total - first_day) / np.maximum(x, 1), 0.0)
        params = model.params
        expected = expected_purchases_array(CLV_HORIZON_DAYS, Customers.of(x, t_x, T), params)
        denominator = params.p * x + params.q - 1
        with np.errstate(all="ignore"):
            value = np.where(
                denominator > 0, params.p * (params.gamma + x * mean) / denominator, np.nan
            )
        clv = expected * value
    else:
        clv = np.zeros(0)
    by_stage: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        picked = np.array([s == stage for s in stages], dtype=bool)
        if picked.any():
            by_stage[stage] = _summary(clv[picked])
    return {
        "model_version": model.version,
        "at": format_iso(clock),
        "horizon_days": CLV_HORIZON_DAYS,
        "business": _summary(clv),
        "by_stage": by_stage,
        "customers_without_statistics": len(rows) - len(known),
    }


def _summary(values: Any) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    total = float(finite.sum()) if len(finite) else 0.0
    return {
        "customers": len(values),
        "predicted_clv_365d": round(total, 2),
        "mean_predicted_clv_365d": round(total / len(finite), 2) if len(finite) else None,
    }
