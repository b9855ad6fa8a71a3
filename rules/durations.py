"""Durations as rule authors write them (``30d``, ``12h``) -> integer microseconds.

Rules compare event times, which are integer microseconds (``events.model``), so a
duration is parsed once at load into the same unit and never touches ``datetime``.
"""

from __future__ import annotations

import re
from typing import Final

from events.model import DAY, HOUR, MINUTE, SECOND, Micros

UNITS: Final[dict[str, Micros]] = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> Micros:
    """``"30d"`` -> 30 days in microseconds; raises ``ValueError`` with a usable reason."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit, e.g. 30d, 12h, 15m, 2w"
        )
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"{text!r} is a zero duration")
    return amount * UNITS[match.group(2)]


def format_duration(micros: Micros) -> str:
    """The inverse of ``parse_duration`` for the largest unit that divides exactly."""
    for unit in ("w", "d", "h", "m", "s"):
        size = UNITS[unit]
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros}us"
