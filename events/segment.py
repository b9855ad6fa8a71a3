"""Segment's message shape (its HTTP Tracking API and every SDK) -> the native format.

Upstream teams already instrument with Segment's or RudderStack's SDKs; this
module is what lets those SDKs point at Engage unchanged (DESIGN.md,
"Compatible ingest"). It only renames and reshapes: the result is a native
JSON object that then goes through the one validator (``events.ingest``), so
there is no second set of field rules. Pure: no I/O, no clock (Segment's
``receivedAt`` fallback is passed in).

A Segment field that the validator later rejects is reported under its
Segment name (``properties.revenue``, not ``properties.amount``): the person
reading the error wrote the Segment call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from events.ingest import IngestError
from events.model import CUSTOM_NAME_KEPT_AS, custom_properties

MESSAGE_TYPES: Final = ("track", "identify", "page", "screen", "group", "alias")

ALIAS_EVENT: Final = "identity-alias"
"""The custom touchpoint an ``alias`` call becomes: it keeps ``previous_id``
and ``user_id`` on the log for the identity graph (DESIGN.md, "Identity")."""

# Segment spec event -> (native type, {native property: Segment properties, first present wins})
_SPEC: Final[dict[str, tuple[str, dict[str, tuple[str, ...]]]]] = {
    "Order Completed": (
        "purchase",
        {
            "order_id": ("order_id", "checkout_id"),
            "amount": ("revenue", "total"),
            "currency": ("currency",),
            "items": ("products",),
        },
    ),
    "Order Refunded": ("refund", {"order_id": ("order_id",), "amount": ("revenue", "total")}),
    "Email Sent": (
        "email_sent",
        {"campaign_id": ("campaign_id", "campaign_name"), "message_id": ("email_id",)},
    ),
    "Email Delivered": (
        "email_sent",
        {"campaign_id": ("campaign_id", "campaign_name"), "message_id": ("email_id",)},
    ),
    "Email Opened": (
        "email_opened",
        {"campaign_id": ("campaign_id", "campaign_name"), "message_id": ("email_id",)},
    ),
    "Email Link Clicked": (
        "email_clicked",
        {
            "campaign_id": ("campaign_id", "campaign_name"),
            "message_id": ("email_id",),
            "url": ("link_url", "url"),
        },
    ),
    "Unsubscribed": ("unsubscribed", {"list": ("list_id", "list_name")}),
    "Live Chat Conversation Started": ("chat_started", {"conversation_id": ("conversation_id",)}),
    "Live Chat Conversation Ended": ("chat_ended", {"conversation_id": ("conversation_id",)}),
}
SPEC_EVENTS: Final = tuple(_SPEC)

_REQUIRED_HINT: Final = {
    ("purchase", "amount"): "Order Completed needs revenue or total (a number, 0 or more)",
    ("refund", "amount"): "Order Refunded needs revenue or total (a number, 0 or more)",
}

# Segment's top-level `channel` (where the SDK runs) -> a native channel
_CHANNELS: Final = {"browser": "web", "mobile": "app"}


@dataclass(slots=True)
class Mapped:
    """A native JSON object, and the Segment name of each native field it filled."""

    obj: dict[str, Any]
    renames: dict[str, str] = field(default_factory=dict)


def _id(msg: dict[str, Any], name: str) -> str | None:
    """Segment ids are strings, but SDKs pass numbers through: keep their text."""
    value = msg.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise IngestError(name, "must be a string")
    return str(value)


def message_id(msg: dict[str, Any]) -> str:
    """``messageId``, or (a raw HTTP call without one) a hash of the message,
    so an exact retry is still recognised as a duplicate."""
    given = _id(msg, "messageId")
    if given is not None:
        return given
    digest = hashlib.sha256(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"segment-{digest[:40]}"


def _dict(msg: dict[str, Any], name: str) -> dict[str, Any]:
    value = msg.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError(name, "must be an object")
    return value


def from_segment(msg: object, kind: str | None = None, received_at: str | None = None) -> Mapped:
    """Map one Segment message to a native JSON object.

    ``kind`` is the message type the endpoint implies (``/v1/track``...),
    used when the message has no ``type``; ``received_at`` stands in for a
    missing ``timestamp``, as Segment's own ``receivedAt`` does."""
    if not isinstance(msg, dict):
        raise IngestError("(event)", "must be a JSON object")
    message_type = msg.get("type") or kind
    if message_type not in MESSAGE_TYPES:
        raise IngestError(
            "type",
            f"unknown Segment call {message_type!r}; expected one of {', '.join(MESSAGE_TYPES)}",
        )
    mapped = Mapped({"event_id": message_id(msg)}, {"event_id": "messageId"})
    obj = mapped.obj
    user_id, anonymous_id = _id(msg, "userId"), _id(msg, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise IngestError("userId", "a message needs userId or anonymousId")
    if user_id is not None:
        obj["customer_id"] = user_id
        mapped.renames["customer_id"] = "userId"
    if anonymous_id is not None:
        obj["anonymous_id"] = anonymous_id
        mapped.renames["anonymous_id"] = "anonymousId"
    for name in ("timestamp", "originalTimestamp"):
        if msg.get(name) is not None:
            obj["occurred_at"] = msg[name]
            mapped.renames["occurred_at"] = name
            break
    else:
        if received_at is not None:
            obj["occurred_at"] = received_at
        else:
            mapped.renames["occurred_at"] = "timestamp"
    channel = msg.get("channel")
    if isinstance(channel, str) and channel in _CHANNELS:
        obj["channel"] = _CHANNELS[channel]
    _BUILDERS[message_type](msg, mapped)
    return mapped


def _track(msg: dict[str, Any], mapped: Mapped) -> None:
    name = msg.get("event")
    if not isinstance(name, str) or not name:
        raise IngestError("event", "a track call needs the event's name (a string)")
    props = _dict(msg, "properties")
    spec = _SPEC.get(name)
    if spec is None:
        _custom(mapped, name, props)
        return
    native_type, fields = spec
    out = dict(props)
    for native, candidates in fields.items():
        for candidate in candidates:
            if props.get(candidate) is not None:
                out.pop(candidate, None)
                out[native] = props[candidate]
                mapped.renames[f"properties.{native}"] = f"properties.{candidate}"
                break
        else:
            mapped.renames.setdefault(f"properties.{native}", f"properties.{candidates[0]}")
            hint = _REQUIRED_HINT.get((native_type, native))
            if hint is not None:
                raise IngestError(f"properties.{candidates[0]}", hint)
    mapped.obj["type"] = native_type
    mapped.obj["properties"] = out


def _custom(mapped: Mapped, name: str, props: dict[str, Any]) -> None:
    mapped.renames[f"properties.{CUSTOM_NAME_KEPT_AS}"] = "properties.name"
    mapped.renames["properties.name"] = "event"
    mapped.obj["type"] = "custom"
    mapped.obj["properties"] = custom_properties(name, props)


def _identify(msg: dict[str, Any], mapped: Mapped) -> None:
    traits = dict(_dict(msg, "traits"))
    props: dict[str, Any] = {}
    email = traits.pop("email", None)
    if email is not None:
        props["email"] = email
        mapped.renames["properties.email"] = "traits.email"
    name = traits.pop("name", None)
    if name is None and (traits.get("firstName") or traits.get("lastName")):
        parts = (traits.get("firstName"), traits.get("lastName"))
        name = " ".join(str(p) for p in parts if p)
    if name is not None:
        props["name"] = name
        mapped.renames["properties.name"] = "traits.name"
    if traits:
        props["traits"] = traits
    mapped.obj["type"] = "identify"
    mapped.obj["properties"] = props


def _page(msg: dict[str, Any], mapped: Mapped) -> None:
    props = dict(_dict(msg, "properties"))
    page = _dict(_dict(msg, "context"), "page")
    url = props.pop("url", None) or page.get("url")
    if url is None:
        raise IngestError("properties.url", "a page call needs properties.url or context.page.url")
    referrer = props.pop("referrer", None) or page.get("referrer")
    if msg.get("name") is not None:
        props.setdefault("page_name", msg["name"])
    out: dict[str, Any] = {**props, "url": url}
    if referrer:
        out["referrer"] = referrer
    mapped.obj["type"] = "web_visit"
    mapped.obj.setdefault("channel", "web")
    mapped.obj["properties"] = out


def _screen(msg: dict[str, Any], mapped: Mapped) -> None:
    props = dict(_dict(msg, "properties"))
    if msg.get("name") is not None:
        props.setdefault("screen", msg["name"])
    _custom(mapped, "Screen Viewed", props)
    mapped.obj["channel"] = "app"


def _group(msg: dict[str, Any], mapped: Mapped) -> None:
    props = dict(_dict(msg, "traits"))
    group_id = _id(msg, "groupId")
    if group_id is None:
        raise IngestError("groupId", "a group call needs groupId")
    props["group_id"] = group_id
    _custom(mapped, "Group", props)


def _alias(msg: dict[str, Any], mapped: Mapped) -> None:
    previous = _id(msg, "previousId")
    if previous is None:
        raise IngestError("previousId", "an alias call needs previousId")
    user_id = mapped.obj.get("customer_id")
    if user_id is None:
        raise IngestError("userId", "an alias call needs userId")
    _custom(mapped, ALIAS_EVENT, {"previous_id": previous, "user_id": user_id})


_BUILDERS: Final = {
    "track": _track,
    "identify": _identify,
    "page": _page,
    "screen": _screen,
    "group": _group,
    "alias": _alias,
}


def looks_like_segment(obj: dict[str, Any]) -> bool:
    """A Segment message carries ``messageId``, ``userId`` or ``anonymousId``
    (camelCase), which the native format never does."""
    return any(k in obj for k in ("messageId", "userId", "anonymousId", "previousId"))
