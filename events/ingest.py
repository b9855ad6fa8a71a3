"""Validation of the JSON ingest format (DESIGN.md, "JSON ingest format").

Upstream systems are written against this format, so every rejection names
the field and the reason in words a developer of that system can act on, and
the caller keeps the raw text in the dead-letter store. Validation is pure:
it turns one decoded JSON value into a ``Touchpoint`` or an ``IngestError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from events.errors import EngageError
from events.limits import TimeWindow, customer_id_problem, depth_problem, dumps_any
from events.model import CHANNELS, EVENT_TYPES, MAX_ID_LENGTH, Touchpoint
from events.timefmt import parse_iso

_ENVELOPE: Final = frozenset(
    {
        "event_id",
        "customer_id",
        "anonymous_id",
        "type",
        "occurred_at",
        "channel",
        "source",
        "properties",
    }
)
_CHANNEL_SET: Final = frozenset(CHANNELS)
MAX_AMOUNT: Final = 1e12
_SURVEY_RANGES: Final = {"nps": (0, 10), "csat": (1, 5)}
_STRING_PROPS: Final = frozenset(
    {
        "email",
        "name",
        "campaign_id",
        "message_id",
        "url",
        "list",
        "referrer",
        "order_id",
        "currency",
        "conversation_id",
        "case_id",
        "resolution",
        "survey",
        "comment",
    }
)


_FLOOR: Final = TimeWindow()


class IngestError(EngageError):
    """One rejected event: which field, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected input line, kept with its raw text for the dead-letter store."""

    line_no: int | None
    field: str
    reason: str
    raw: str
    event_id: str | None = None

    def message(self, source: str = "") -> str:
        where = f"{source}:" if source else ""
        where += f"line {self.line_no}" if self.line_no is not None else "event"
        return f"{where}: {self.field}: {self.reason}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _required_text(obj: dict[str, Any], name: str, what: str = "a string") -> str:
    """A field that must be there and be a string: the one wording of both
    failures for ids, ``type`` and ``occurred_at``."""
    value = obj.get(name)
    if value is None:
        raise IngestError(name, "required field is missing")
    if not isinstance(value, str):
        raise IngestError(name, f"must be {what}, got {_type_name(value)}")
    return value


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = _required_text(obj, name)
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise IngestError(name, f"must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}")
    if "\x00" in value:
        # ids are stored in PostgreSQL text columns, which cannot hold NUL
        raise IngestError(name, "must not contain NUL (\\u0000) characters")
    return value


def _person(obj: dict[str, Any]) -> tuple[str, str | None]:
    """(customer_id, anonymous_id): at least one is required. Without a
    customer_id the anonymous id names the profile (DESIGN.md, "Identity"),
    so it must be usable as a customer id too."""
    anonymous_id = None
    if obj.get("anonymous_id") is not None:
        anonymous_id = _identifier(obj, "anonymous_id")
    if obj.get("customer_id") is None:
        if anonymous_id is None:
            raise IngestError("customer_id", "required field is missing (or send anonymous_id)")
        key, field = anonymous_id, "anonymous_id"
    else:
        key, field = _identifier(obj, "customer_id"), "customer_id"
    problem = customer_id_problem(key)
    if problem is not None:
        raise IngestError(field, problem)
    if field == "customer_id" and anonymous_id is not None:
        problem = customer_id_problem(anonymous_id)
        if problem is not None:
            raise IngestError("anonymous_id", problem)
    return key, anonymous_id


def _amount(props: dict[str, Any]) -> float:
    value = props.get("amount")
    if value is None:
        raise IngestError("properties.amount", "required property is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IngestError("properties.amount", f"must be a number, got {_type_name(value)}")
    amount = float(value)
    if not math.isfinite(amount):
        raise IngestError("properties.amount", "must be a finite number")
    if amount < 0:
        raise IngestError("properties.amount", f"must be 0 or more, got {value}")
    if amount > MAX_AMOUNT:
        # sums of near-float-max amounts overflow to inf, which JSON cannot store
        raise IngestError("properties.amount", f"must be at most {MAX_AMOUNT:.0e}, got {value}")
    return amount


def _score(props: dict[str, Any], survey: str) -> int:
    value = props.get("score")
    if value is None:
        raise IngestError("properties.score", "required property is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IngestError("properties.score", f"must be a number, got {_type_name(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise IngestError("properties.score", f"must be a whole number, got {value}")
    low, high = _SURVEY_RANGES[survey]
    score = int(value)
    if not low <= score <= high:
        raise IngestError(
            "properties.score", f"{survey} score must be {low} to {high}, got {value}"
        )
    return score


def _free_form(name: str, value: object) -> None:
    problem = depth_problem(value)
    if problem is not None:
        raise IngestError(f"properties.{name}", problem)


def _properties(event_type: str, raw: object) -> tuple[dict[str, Any], dict[str, str]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise IngestError("properties", f"must be an object, got {_type_name(raw)}")
    for name, value in raw.items():
        if isinstance(value, dict | list):
            _free_form(str(name), value)
    required, optional, _ = EVENT_TYPES[event_type]
    props: dict[str, Any] = {}
    for name in required:
        if raw.get(name) is None:
            raise IngestError(f"properties.{name}", f"required property of {event_type} is missing")
    for name in (*required, *optional):
        value = raw.get(name)
        if value is None:
            continue
        if name in _STRING_PROPS:
            if not isinstance(value, str):
                raise IngestError(
                    f"properties.{name}", f"must be a string, got {_type_name(value)}"
                )
            props[name] = value
        elif name == "traits":
            if not isinstance(value, dict):
                raise IngestError(
                    "properties.traits", f"must be an object, got {_type_name(value)}"
                )
            props[name] = {
                str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                for k, v in value.items()
            }
        elif name == "items":
            if not isinstance(value, list):
                raise IngestError("properties.items", f"must be an array, got {_type_name(value)}")
            props[name] = value
        elif name == "resolved":
            if not isinstance(value, bool):
                raise IngestError(
                    "properties.resolved", f"must be true or false, got {_type_name(value)}"
                )
            props[name] = value
        # amount and score are checked below with their own rules
    if event_type in ("purchase", "refund"):
        props["amount"] = _amount(raw)
    if event_type == "purchase":
        currency = props.get("currency", "USD")
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise IngestError(
                "properties.currency", f"must be a 3-letter ISO 4217 code, got {currency!r}"
            )
        props["currency"] = currency.upper()
    if event_type == "custom" and not 1 <= len(props["name"]) <= MAX_ID_LENGTH:
        raise IngestError(
            "properties.name", f"must be 1 to {MAX_ID_LENGTH} characters, got {len(props['name'])}"
        )
    if event_type == "survey_response":
        survey = props["survey"]
        if survey not in _SURVEY_RANGES:
            raise IngestError("properties.survey", f"must be 'nps' or 'csat', got {survey!r}")
        props["score"] = _score(raw, survey)
    known = set(required) | set(optional)
    extra = {
        str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in raw.items()
        if k not in known and v is not None
    }
    return props, extra


def validate(obj: object, window: TimeWindow | None = None) -> Touchpoint:
    """Turn one decoded JSON value into a ``Touchpoint`` or raise ``IngestError``.

    ``window`` bounds ``occurred_at`` (``TimeWindow.around(now)``); without
    one only the 1970 floor applies (tools that validate history offline)."""
    if not isinstance(obj, dict):
        raise IngestError("(event)", f"must be a JSON object, got {_type_name(obj)}")
    event_id = _identifier(obj, "event_id")
    customer_id, anonymous_id = _person(obj)
    event_type = _required_text(obj, "type")
    if event_type not in EVENT_TYPES:
        raise IngestError(
            "type", f"unknown type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    occurred = _required_text(obj, "occurred_at", "an ISO 8601 string")
    try:
        occurred_at = parse_iso(occurred)
    except ValueError as exc:
        raise IngestError("occurred_at", str(exc)) from None
    problem = (window or _FLOOR).problem(occurred_at)
    if problem is not None:
        raise IngestError("occurred_at", problem)
    channel = obj.get("channel")
    if channel is None:
        channel = EVENT_TYPES[event_type][2]
    elif not isinstance(channel, str):
        raise IngestError("channel", f"must be a string, got {_type_name(channel)}")
    elif channel not in _CHANNEL_SET:
        raise IngestError(
            "channel", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}"
        )
    source = obj.get("source")
    if source is not None and not isinstance(source, str):
        raise IngestError("source", f"must be a string, got {_type_name(source)}")
    props, extra = _properties(event_type, obj.get("properties"))
    return Touchpoint(
        event_id=event_id,
        customer_id=customer_id,
        type=event_type,
        occurred_at=occurred_at,
        channel=channel,
        source=source,
        properties=props,
        extra=extra,
        anonymous_id=anonymous_id,
    )


def parse_line(
    line: str, line_no: int | None, window: TimeWindow | None = None
) -> Touchpoint | Rejection:
    """Parse and validate one JSON Lines line; never raises for bad input."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejection(line_no, "(line)", f"not valid JSON: {exc}", line)
    return parse_object(obj, line_no, line, window)


Mapper = Callable[[object], tuple[object, Callable[[str], str]]]
"""Turns a foreign shape (Segment, CloudEvents, a CSV row) into a native JSON
object, and names a native field the way the sender wrote it."""


def parse_object(
    obj: object,
    line_no: int | None,
    raw: str | None = None,
    window: TimeWindow | None = None,
    mapper: Mapper | None = None,
) -> Touchpoint | Rejection:
    """Validate a decoded JSON value; ``raw`` is kept for the dead-letter store.

    ``mapper`` first turns a foreign shape into the native one, so every shape
    goes through this one validator. Never raises: a validator bug on one
    hostile event must cost that event, not the file or the batch around it."""
    native: object = obj
    rename: Callable[[str], str] = str
    try:
        if mapper is not None:
            native, rename = mapper(obj)
        return validate(native, window)
    except IngestError as exc:
        field, reason = rename(exc.field), exc.reason
    except Exception as exc:  # defensive: reported per event, never a 5xx
        field, reason = "(event)", f"could not be validated: {type(exc).__name__}: {exc}"
    text = raw if raw is not None else dumps_any(obj)
    event_id = native.get("event_id") if isinstance(native, dict) else None
    return Rejection(line_no, field, reason, text, event_id if isinstance(event_id, str) else None)
