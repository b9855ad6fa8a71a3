"""CloudEvents 1.0 (structured JSON) -> the native format.

CloudEvents is the CNCF envelope many event routers already emit (Knative,
Azure Event Grid, Google Eventarc...). Its context attributes carry what the
native envelope needs (DESIGN.md, "Compatible ingest"): ``id`` is the event
id, ``subject`` the customer id, ``time`` the ``occurred_at``, ``source`` the
upstream system and ``data`` the properties. The touchpoint type is the
CloudEvents ``type`` when it names one of ours, either whole (``purchase``) or
as its last dotted segment (``com.example.shop.purchase``); any other
``type`` becomes a ``custom`` touchpoint named by it. Two optional extension
attributes (lower-case, as the spec requires) fill the rest: ``anonymousid``
and ``channel``.

Pure: it reshapes; ``events.ingest`` validates.
"""

from __future__ import annotations

from typing import Any, Final

from events.ingest import IngestError
from events.model import CUSTOM_NAME_KEPT_AS, EVENT_TYPES, custom_properties

SPEC_VERSION: Final = "1.0"

_RENAMES: Final = {
    "event_id": "id",
    "customer_id": "subject",
    "occurred_at": "time",
    "anonymous_id": "anonymousid",
}


def native_type(ce_type: str) -> str | None:
    """Our touchpoint type named by a CloudEvents ``type``, or None (custom)."""
    if ce_type in EVENT_TYPES:
        return ce_type
    last = ce_type.rsplit(".", 1)[-1]
    return last if last in EVENT_TYPES else None


def from_cloudevent(event: object) -> tuple[dict[str, Any], dict[str, str]]:
    """Map one structured-mode CloudEvent to a native JSON object, with the
    CloudEvents name of each native field (for error messages)."""
    if not isinstance(event, dict):
        raise IngestError("(event)", "must be a CloudEvent JSON object")
    version = event.get("specversion")
    if version != SPEC_VERSION:
        raise IngestError("specversion", f"must be {SPEC_VERSION!r}, got {version!r}")
    ce_type = event.get("type")
    if not isinstance(ce_type, str) or not ce_type:
        raise IngestError("type", "required attribute is missing")
    if "data_base64" in event:
        raise IngestError("data_base64", "binary data is not a touchpoint; send JSON `data`")
    content_type = event.get("datacontenttype")
    if isinstance(content_type, str) and "json" not in content_type:
        raise IngestError("datacontenttype", f"must be a JSON type, got {content_type!r}")
    data = event.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IngestError("data", "must be a JSON object (the touchpoint's properties)")
    renames = {**_RENAMES, **{f"properties.{k}": f"data.{k}" for k in data}}
    obj: dict[str, Any] = {"event_id": event.get("id"), "occurred_at": event.get("time")}
    for native, attribute in (("customer_id", "subject"), ("anonymous_id", "anonymousid")):
        if event.get(attribute) is not None:
            obj[native] = event[attribute]
    if "customer_id" not in obj and "anonymous_id" not in obj:
        raise IngestError("subject", "required: the customer's id (or the anonymousid extension)")
    if event.get("source") is not None:
        obj["source"] = event["source"]
    if event.get("channel") is not None:
        obj["channel"] = event["channel"]
    mapped = native_type(ce_type)
    if mapped is None:
        obj["type"] = "custom"
        props = custom_properties(ce_type, data)
        renames[f"properties.{CUSTOM_NAME_KEPT_AS}"] = "data.name"
        renames["properties.name"] = "type"
    else:
        obj["type"] = mapped
        props = data
    obj["properties"] = props
    return obj, renames


def looks_like_cloudevent(obj: dict[str, Any]) -> bool:
    return "specversion" in obj
