"""ISO 8601 <-> integer microseconds, the only place times change shape.

Kept apart from the model so the fold never touches ``datetime``: the fold
sees integers, the edges (ingest, JSON output, CLI flags) see strings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from events.model import Micros

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso(text: str) -> Micros:
    """Parse an ISO 8601 timestamp that carries a zone (``Z`` or an offset).

    Raises ``ValueError`` with a reason a person can act on.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("expected an ISO 8601 timestamp string")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone; add 'Z' or an offset such as +02:00")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range once converted to UTC") from None
    return to_micros(value)


def parse_named(value: str | None, name: str, error: Callable[[str], Exception]) -> Micros | None:
    """An optional instant given as the option or parameter ``name``. A bad one
    raises ``error("name: reason")``: the CLI (a ``ConfigError``) and the HTTP
    API (a 422) word it alike from one place."""
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise error(f"{name}: {exc}") from None


def to_micros(value: datetime) -> Micros:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_datetime(micros: Micros) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def format_iso(micros: Micros) -> str:
    """Format as ISO 8601 UTC with a ``Z``, to the second: the contract's
    timestamp form, one shape for every time Engage prints. Sub-second parts
    (kept internally, in microseconds) are cut rather than shown only when
    present: a column of times that switched between ``...:05Z`` and
    ``...:05.123456Z`` read as two formats."""
    whole = micros - micros % 1_000_000
    return to_datetime(whole).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_iso_exact(micros: Micros) -> str:
    """ISO 8601 UTC with a ``Z`` and every microsecond there is: for exports and
    anything that must read back as the same instant."""
    return to_datetime(micros).isoformat().replace("+00:00", "Z")


def format_optional(micros: Micros | None) -> str | None:
    return None if micros is None else format_iso(micros)
