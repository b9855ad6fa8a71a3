"""The bounds ingest puts on hostile input, kept apart from the field rules.

Every free-form value (unknown properties, ``traits``, ``items``) is arbitrary
JSON from an upstream system, and every timestamp moves the processor's
clock. Without bounds one event can stall or poison everyone's data: a date
in year 9999 makes every customer "churned" and fires every timer at once; a
value nested 255 levels deep makes ``orjson.dumps`` raise and 1,000 levels
make the Avro encoder fail. These checks run inside validation, so such an
event is rejected on its own (field, reason, raw text in the DLQ) and its
neighbours are stored.

Pure: "now" is a parameter (``TimeWindow``); the CLI and HTTP read the clock.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

import orjson

from events.model import DAY, Micros
from events.timefmt import format_iso

MAX_DEPTH: Final = 32
"""Nesting levels allowed in a free-form value (an object or array counts one)."""

MAX_ARRAY: Final = 1_000
"""Elements of one array in a free-form value: rule conditions iterate over
lists (``items.exists(...)``), and their cost is bounded by these sizes
(``rules.budget``)."""

MAX_ELEMENTS: Final = 10_000
"""Elements (array items and object members) in one free-form value, all
levels together."""

EARLIEST: Final[Micros] = 0
"""1970-01-01T00:00:00Z: nothing the engine tracks happened before it."""

DEFAULT_MAX_FUTURE: Final[Micros] = DAY
"""How far ahead of "now" an ``occurred_at`` may lie (``ENGAGE_MAX_FUTURE``):
clocks upstream drift, but not by more than a day."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The instants an ``occurred_at`` may take: [earliest, latest]."""

    earliest: Micros = EARLIEST
    latest: Micros | None = None

    @classmethod
    def around(cls, now: Micros, max_future: Micros = DEFAULT_MAX_FUTURE) -> TimeWindow:
        return cls(EARLIEST, now + max_future)

    def problem(self, at: Micros) -> str | None:
        """Why ``at`` is out of bounds, or None."""
        if at < self.earliest:
            return f"{format_iso(at)} is before {format_iso(self.earliest)}, the earliest allowed"
        if self.latest is not None and at > self.latest:
            return (
                f"{format_iso(at)} is in the future: later than {format_iso(self.latest)} "
                "(now plus ENGAGE_MAX_FUTURE); send the time the event happened"
            )
        return None


def depth_problem(value: object, limit: int = MAX_DEPTH) -> str | None:
    """Why ``value`` nests too deeply or holds too long an array, or None.
    Iterative: a recursive walk is what fails on the hostile input this
    guards against."""
    if _surely_small(value, limit):
        return None
    stack: list[tuple[object, int]] = [(value, 1)]
    elements = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
            if len(item) > MAX_ARRAY:
                return f"holds an array of {len(item)} elements; at most {MAX_ARRAY}"
        else:
            continue
        if depth > limit:
            return f"nested more than {limit} levels deep"
        elements += len(children)
        if elements > MAX_ELEMENTS:
            return f"holds more than {MAX_ELEMENTS} elements in all"
        stack.extend((child, depth + 1) for child in children)
    return None


def _surely_small(value: object, limit: int) -> bool:
    """The fast path for what real events carry (a few line items): in its
    JSON text, fewer brackets than ``limit`` bound the nesting, and fewer than
    ``2 * MAX_ARRAY`` bytes bound every array's length (brackets inside
    strings only make this more cautious). One C call instead of a walk."""
    try:
        text = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return len(text) < 2 * MAX_ARRAY and text.count(b"[") + text.count(b"{") <= limit


_UNADDRESSABLE: Final = frozenset({".", ".."})


def customer_id_problem(value: str) -> str | None:
    """Why a customer_id cannot be used, or None.

    A customer id is a path segment of the read API (``/v1/customers/{id}``)
    and is printed by the CLI, so ids that no URL can address (``/``, ``.``,
    ``..``) or that carry control characters (terminal escapes) are refused
    at ingest rather than stored unreadable."""
    if "/" in value:
        return "must not contain '/': it could not be addressed in /v1/customers/{id}"
    if value in _UNADDRESSABLE:
        return f"must not be {value!r}: it could not be addressed in /v1/customers/{{id}}"
    if value.isprintable():  # the common case, in C: no control character at all
        return None
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            return f"must not contain control characters (found U+{ord(ch):04X})"
    return None


def dumps_any(value: object) -> str:
    """JSON text for any decoded JSON value, however deep.

    ``orjson.dumps`` stops at 255 levels and ``json.dumps`` at the recursion
    limit; a rejected event still needs its raw text for the DLQ, so this
    falls back to an iterative writer."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        pass
    out: list[str] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Token("}"))
            parts: list[object] = []
            for i, (k, v) in enumerate(item.items()):
                parts.append(_Token(("," if i else "") + json.dumps(str(k)) + ":"))
                parts.append(v)
            stack.extend(reversed(parts))
        elif isinstance(item, list):
            out.append("[")
            stack.append(_Token("]"))
            parts = []
            for i, v in enumerate(item):
                if i:
                    parts.append(_Token(","))
                parts.append(v)
            stack.extend(reversed(parts))
        else:
            try:
                out.append(json.dumps(item, ensure_ascii=False))
            except (TypeError, ValueError):
                out.append(json.dumps(repr(item)))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
