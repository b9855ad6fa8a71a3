"""KPI periods: days since 1970 grouped into weeks and months, and the range a
report covers.

A report lists every period between its first and last, so the range must be
bounded by the data actually present: one stored fact dated in year 1 or 9999
(or a processor clock moved there) would otherwise make a daily report
millions of periods long, and a period ending after 9999-12-31 cannot even
be named.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from typing import Final

from events.model import DAY, Micros

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
MIN_DAY: Final = date(1, 2, 1).toordinal() - _EPOCH_ORDINAL
MAX_DAY: Final = date(9999, 11, 30).toordinal() - _EPOCH_ORDINAL
"""Days a period can be named for (its start and end stay within ``date``)."""
MAX_PERIODS: Final = 5_000
"""Past this many periods a report lists only those holding facts: 13 years by day."""


@lru_cache(maxsize=4096)
def _month(day: int) -> int:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    return d.year * 12 + d.month - 1


def period(grain: str, day: int) -> int:
    """The period a day (days since 1970-01-01) falls in: a day number for
    ``day``, a Monday-based week number, ``year*12 + month - 1``, or 0 for all."""
    if grain == "day":
        return day
    if grain == "week":
        return (day + 3) // 7  # 1970-01-01 was a Thursday
    if grain == "month":
        return _month(day)
    return 0


def period_start(grain: str, number: int) -> date:
    """The first day of a period numbered by ``period``."""
    if grain == "day":
        return date.fromordinal(_EPOCH_ORDINAL + number)
    if grain == "week":
        return date.fromordinal(_EPOCH_ORDINAL + number * 7 - 3)
    if grain == "month":
        return date(number // 12, number % 12 + 1, 1)
    return date(1970, 1, 1)


def period_end(grain: str, number: int) -> date:
    """The first day after the period."""
    if grain == "day":
        return period_start(grain, number) + timedelta(days=1)
    if grain == "week":
        return period_start(grain, number) + timedelta(days=7)
    return period_start(grain, number + 1)


def day_range(
    clock: Micros | None,
    first_day: int | None,
    last_fact_day: int | None,
) -> tuple[int, int] | None:
    """(first, last) day a report covers, or None when there is nothing.

    From the first day with a flow to the clock's day, but never past the
    last day that holds any fact (``last_fact_day``: flows, stage changes,
    triggers): a clock far ahead of the data adds no empty periods. Clamped
    to days ``date`` can name."""
    if first_day is None or clock is None:
        return None
    last = max(first_day, min(clock // DAY, max(last_fact_day or first_day, first_day)))
    first = max(MIN_DAY, min(first_day, MAX_DAY))
    return first, max(first, min(last, MAX_DAY))


def period_numbers(
    by: str, first: int, last: int, present: Iterable[int]
) -> tuple[list[int], bool]:
    """The periods a report lists, and whether empty ones were left out.

    Every period from ``first`` to ``last`` while there are at most
    ``MAX_PERIODS``; past that (a stray fact decades away from the rest)
    only the periods that hold facts (``present``) and the last one, the
    latest ``MAX_PERIODS`` of them."""
    low, high = period(by, first), period(by, last)
    if high - low < MAX_PERIODS:
        return list(range(low, high + 1)), False
    kept = sorted({p for p in present if low <= p <= high} | {high})
    return kept[-MAX_PERIODS:], True


def first_period_day(by: str, number: int) -> int:
    """The first day (since 1970) of a period number; always a nameable date,
    unlike the period's end when it holds 9999-12-31."""
    return (period_start(by, number) - date(1970, 1, 1)).days
