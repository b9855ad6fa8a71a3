"""What to generate (``HistorySpec``), the calendar, and the size estimate.

The calendar (week and season) sets each day's activity; the estimate uses
it to predict a history's size without simulating it, for progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from engage.synthetic.personas import SHAPES
from events.errors import EngageError
from events.model import SECOND, Micros

DEFAULT_START: Final[Micros] = 1_767_225_600 * SECOND
"""2026-01-01T00:00:00Z."""

LONG_START: Final[Micros] = 1_717_200_000 * SECOND
"""2024-06-01T00:00:00Z: where the benchmarks' and tests' long histories start,
so 540 days of it end in the past and no event is refused as from the future."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class HistorySpec:
    """What to generate. ``start`` is a parameter so the module never reads the clock."""

    customers: int = 10_000
    days: int = 180
    start: Micros = DEFAULT_START
    seed: int = 7
    bad_lines: int = 0
    duplicate_rate: float = 0.0
    shape: str = "short"
    """``short``: every channel, weekly campaigns (the demo). ``long``: a
    purchase-heavy retail history with no campaigns, where most customers buy
    1–5 times months apart, so inactivity and win-back timers fire about once
    per purchase, as on a real shop's history. Use it with 365 days or more."""


WEEKDAY_FACTOR: Final = (0.95, 0.92, 0.97, 1.0, 1.05, 1.25, 1.15)  # Monday first


def season_of(day: datetime) -> tuple[float, float]:
    """The calendar's pull on a day: (activity and spend multiplier, refund rate)."""
    md = (day.month, day.day)
    if (11, 24) <= md <= (12, 1):
        return 1.9, 0.05  # Black Friday week
    if (11, 15) <= md <= (12, 23):
        return 1.6, 0.05
    if md in ((12, 24), (12, 25)):
        return 0.8, 0.05
    if md >= (12, 26) or md <= (1, 7):
        return 1.35, 0.14  # post-holiday sales, and the returns
    if md <= (1, 20):
        return 1.0, 0.10
    if (2, 7) <= md <= (2, 14):
        return 1.15, 0.05
    return 1.0, 0.05


def mean_factor(start: Micros, days: int) -> float:
    first = EPOCH + timedelta(microseconds=start)
    total = 0.0
    for d in range(days):
        day = first + timedelta(days=d)
        total += season_of(day)[0] * WEEKDAY_FACTOR[day.weekday()]
    return total / days if days else 1.0


def check(spec: HistorySpec) -> None:
    if spec.customers < 0 or spec.days < 0 or spec.bad_lines < 0:
        raise EngageError("customers, days and bad_lines must be 0 or more")
    if spec.shape not in SHAPES:
        raise EngageError(f"unknown history shape {spec.shape!r}: use one of {', '.join(SHAPES)}")
    if not 0.0 <= spec.duplicate_rate <= 1.0:
        raise EngageError(f"duplicate_rate must be between 0 and 1, got {spec.duplicate_rate}")


def estimate_events(spec: HistorySpec) -> int:
    """About how many events ``generate`` yields, for a progress bar; no simulation.

    A curve fitted to measured runs: within about 15% for periods of 1 to
    1,000 days, within 5-10% for the usual 60 days and more. A customer's
    events grow with the days they are around, which grows with the period
    because acquisition is spread over it, then flatten as churn sets in; a
    busy calendar (the holidays) adds visits in proportion to its surplus.
    """
    check(spec)
    if spec.customers == 0 or spec.days == 0:
        return 0
    surplus = mean_factor(spec.start, spec.days) - 1.0
    days = min(spec.days, 1000)
    growth = (0.1995 + 0.195 * surplus) * days + (-0.0000534 + 0.00025 * surplus) * days * days
    # past 1,000 days, carry on along the tangent: churn has flattened the curve
    growth += (spec.days - days) * (0.0927 + 0.694 * surplus)
    return max(0, round(spec.customers * (3.87 + growth)))
