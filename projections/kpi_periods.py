"""KPI periods: days since 1970 grouped into weeks and months, and the range a
report covers.

A report lists every period between its first and last, so the range must be
bounded by the data actually present: one stored fact dated in year 1 or 9999
(or a processor clock moved there) would otherwise make a daily report
millions of periods long, and a period ending after 9999-12-31 cannot even
be named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Final

from events.model import DAY, Micros

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
MIN_DAY: Final = date(1, 2, 1).toordinal() - _EPOCH_ORDINAL
MAX_DAY: Final = date(9999, 11, 30).toordinal() - _EPOCH_ORDINAL
"""Days a period can be named for (its start and end stay within ``date``)."""
MAX_PERIODS: Final = 5_000
"""At most this many periods, the latest: 13 years by day."""


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


def _period_days(by: str, keys: Iterable[Any]) -> Iterable[int]:
    """The first day of each period number in ``keys`` (tuples led by it)."""
    for key in keys:
        yield (period_start(by, key[0]) - date(1970, 1, 1)).days


def day_range(
    by: str,
    clock: Micros | None,
    first_day: int | None,
    cells: Mapping[tuple[int, str, str], Any],
    changes: Iterable[tuple[int, str, int]],
    fired: Mapping[tuple[int, str], int],
) -> tuple[int, int] | None:
    """(first, last) day a report covers, or None when there is nothing.

    From the first day with a flow to the clock's day, but never past the
    last day that holds any fact (flows, stage changes, triggers): a clock
    far ahead of the data adds no empty periods. Clamped to days ``date``
    can name, and to the latest ``MAX_PERIODS`` periods."""
    if first_day is None or clock is None:
        return None
    days = [*_period_days(by, cells), *(d for d, _, _ in changes), *_period_days(by, fired)]
    last_fact = max(days, default=first_day)
    last = max(first_day, min(clock // DAY, max(last_fact, first_day)))
    first = max(MIN_DAY, min(first_day, MAX_DAY))
    last = max(first, min(last, MAX_DAY))
    if period(by, last) - period(by, first) >= MAX_PERIODS:
        first = (period_start(by, period(by, last) - MAX_PERIODS + 1) - date(1970, 1, 1)).days
    return first, last
