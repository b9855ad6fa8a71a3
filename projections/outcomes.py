"""Did the triggers work? Per rule and arm: triggers, conversions, conversion
rate, revenue and time to convert, and the uplift of treatment over control.

One report for every source: ``engage outcomes`` and ``GET /v1/outcomes``
read the counts from PostgreSQL (``projections.adapters.postgres_outcomes``),
``engage backtest`` tallies its would-be triggers and conversions
(``tally``); both end in ``report``, so the numbers mean the same everywhere.

The uplift is the difference of two independent proportions (treatment rate
minus control rate) with a 95% confidence interval by Newcombe's hybrid score
method (Newcombe 1998, "Interval estimation for the difference between
independent proportions", Statistics in Medicine 17:873-890, method 10), as
statsmodels computes it: it stays inside [-1, 1] and behaves with small
counts and rates near 0 or 1, where the textbook Wald interval does not.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from events.model import SECOND, TriggerConverted, TriggerEvent

ARMS: Final = ("treatment", "control")
FEEDBACK: Final = ("delivered", "opened", "clicked", "bounced", "failed")
"""What a channel may report about a delivered trigger (``POST /v1/triggers/{id}/outcome``)."""
CONFIDENCE: Final = 0.95
HOUR: Final = 3600 * SECOND


@dataclass(slots=True)
class ArmStats:
    """One rule's arm: the counts the report is made of."""

    triggers: int = 0
    conversions: int = 0
    revenue: float = 0.0
    mean_time_to_convert: float | None = None
    """Microseconds; None without conversions."""
    median_time_to_convert: float | None = None
    feedback: dict[str, int] = field(default_factory=dict)


Key = tuple[str, str]
"""(rule_id, arm)."""


def tally(
    triggers: Iterable[TriggerEvent], conversions: Iterable[TriggerConverted]
) -> dict[Key, ArmStats]:
    """The counts of triggers and conversions held in memory (a backtest's)."""
    out: dict[Key, ArmStats] = {}
    for t in triggers:
        out.setdefault((t.rule_id, t.arm), ArmStats()).triggers += 1
    times: dict[Key, list[int]] = {}
    for c in conversions:
        stats = out.setdefault((c.rule_id, c.arm), ArmStats())
        stats.conversions += 1
        stats.revenue += c.value or 0.0
        times.setdefault((c.rule_id, c.arm), []).append(c.time_to_convert)
    for key, spans in times.items():
        out[key].mean_time_to_convert = statistics.fmean(spans)
        out[key].median_time_to_convert = float(statistics.median(spans))
    return out


def uplift(
    treatment: tuple[int, int], control: tuple[int, int]
) -> tuple[float, float, float] | None:
    """(difference, low, high) of conversions/triggers, treatment minus control,
    with Newcombe's 95% interval; None when an arm has no triggers."""
    (x1, n1), (x0, n0) = treatment, control
    if n1 <= 0 or n0 <= 0:
        return None
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(
        x1, n1, x0, n0, method="newcomb", compare="diff", alpha=1 - CONFIDENCE
    )
    return x1 / n1 - x0 / n0, float(low), float(high)


def _hours(micros: float | None) -> float | None:
    return None if micros is None else round(micros / HOUR, 2)


def _arm_json(arm: str, s: ArmStats) -> dict[str, Any]:
    return {
        "arm": arm,
        "triggers": s.triggers,
        "conversions": s.conversions,
        "conversion_rate": None if not s.triggers else round(s.conversions / s.triggers, 4),
        "revenue": round(s.revenue, 2),
        "mean_hours_to_convert": _hours(s.mean_time_to_convert),
        "median_hours_to_convert": _hours(s.median_time_to_convert),
        "feedback": {k: s.feedback.get(k, 0) for k in FEEDBACK},
    }


def report(stats: Mapping[Key, ArmStats], rules: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One object per rule (the ``rules`` given first, in their order, then any
    other rule with counts): both arms, and the uplift with its interval."""
    order = list(dict.fromkeys([*rules, *sorted({r for r, _ in stats})]))
    out: list[dict[str, Any]] = []
    for rule_id in order:
        arms = {arm: stats.get((rule_id, arm), ArmStats()) for arm in ARMS}
        t, c = arms["treatment"], arms["control"]
        found = uplift((t.conversions, t.triggers), (c.conversions, c.triggers))
        out.append(
            {
                "rule_id": rule_id,
                "arms": [_arm_json(arm, s) for arm, s in arms.items()],
                "uplift": None
                if found is None
                else {
                    "difference": round(found[0], 4),
                    "ci95": [round(found[1], 4), round(found[2], 4)],
                    "method": "newcombe",
                },
            }
        )
    return out
