"""Which fields of a touchpoint are personal, and sealing them with the
person's key before the event is encoded onto the log.

Sealed: identify's email, name and traits; URLs and referrers; survey
comments; support text (a case's resolution); every unknown extra property;
and the raw text of dead letters. Readable: types, channels, times, amounts,
scores and the pseudonymous ids (event, customer, order, case...), which is
what the fold, the rules and the KPIs run on, so processing never needs a
key for them.

A sealed event keeps its shape: the personal values move into one AES-GCM
blob (``events.keyring.seal``, bound to the event id) stored base64 under the
reserved extra property ``SEALED``, and leave the typed fields empty (a
required string such as a visit's ``url`` becomes ""). No Avro schema
changes, so every reader of the log, old or new, still decodes every record;
only a holder of the person's key sees the text again (``Unsealer``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from typing import Any, Final

import orjson

from events.dead_letters import SEALED_PREFIX
from events.keyring import KeyRing, PersonKey, key_id_of, nonces, open_sealed, seal
from events.model import PERSONAL_PROPERTIES, TOUCHPOINT_FIELDS, Touchpoint

SEALED: Final = "~sealed"
"""The extra property that holds an event's sealed personal values."""

PERSONAL: Final = PERSONAL_PROPERTIES
"""Personal properties per type; every type's ``extra`` is personal too."""

REQUIRED_BLANK: Final[dict[str, dict[str, Any]]] = {"web_visit": {"url": ""}}
"""Required typed fields a sealed event keeps, emptied (the schema needs them)."""

DLQ_PREFIX: Final = SEALED_PREFIX
"""A dead letter's raw text, sealed: this prefix and the base64 blob."""
DLQ_CONTEXT: Final = b"engage dead letter"
NO_PERSON: Final = "~dead-letters"
"""The key for dead letters that name no person (bad JSON, no id)."""
ERASED_TEXT: Final = "(erased)"


_FIELDS: Final = tuple(f.name for f in fields(Touchpoint))


def _rebuilt(event: Touchpoint, properties: dict[str, Any], extra: dict[str, str]) -> Touchpoint:
    """The event with other properties and extra: the constructor is four
    times as fast as ``dataclasses.replace``, used while ``TOUCHPOINT_FIELDS`` names the
    whole model (add a new field to both)."""
    if _FIELDS != TOUCHPOINT_FIELDS:
        return replace(event, properties=properties, extra=extra)
    return Touchpoint(
        event.event_id,
        event.customer_id,
        event.type,
        event.occurred_at,
        event.channel,
        event.source,
        properties,
        extra,
        event.anonymous_id,
    )


def person_of(event: Touchpoint) -> str:
    """The person an event belongs to: its customer_id, else its anonymous_id."""
    return event.customer_id or event.anonymous_id or ""


def personal_part(event: Touchpoint) -> dict[str, Any] | None:
    """The personal values of an event ({"p": properties, "x": extra}), or None."""
    names = PERSONAL.get(event.type)
    if names is None:
        return {"p": {}, "x": event.extra} if event.extra else None
    props = event.properties
    found = {n: props[n] for n in names if props.get(n) is not None}
    if not found and not event.extra:
        return None
    return {"p": found, "x": event.extra}


def seal_events(
    events: Sequence[Touchpoint], keys: KeyRing, known: dict[str, PersonKey] | None = None
) -> list[Touchpoint]:
    """The same events with their personal values sealed: one key lookup for
    the whole batch (created for new persons), one AES-GCM call per event that
    has anything personal; the others are returned as they are. ``known``:
    keys already unwrapped during this publish call, added to."""
    parts = [personal_part(e) for e in events]
    persons = {person_of(e) for e, part in zip(events, parts, strict=True) if part is not None}
    if not persons:
        return list(events)
    ring = {} if known is None else known
    missing = [p for p in persons if p not in ring]
    if missing:
        ring.update(keys.keys_for(missing))
    fresh = iter(nonces(len(events)))
    out: list[Touchpoint] = []
    for event, part in zip(events, parts, strict=True):
        if part is None:
            out.append(event)
            continue
        blob = seal(
            ring[person_of(event)], orjson.dumps(part), event.event_id.encode(), next(fresh)
        )
        props = {k: v for k, v in event.properties.items() if k not in part["p"]}
        props.update(REQUIRED_BLANK.get(event.type, {}))
        text = base64.b64encode(blob).decode("ascii")
        out.append(_rebuilt(event, props, {SEALED: text}))
    return out


def _blob(event: Touchpoint) -> bytes | None:
    text = event.extra.get(SEALED) if event.extra else None
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def unseal_events(events: Sequence[Touchpoint], keys: KeyRing) -> list[Touchpoint]:
    """The events with their personal values back, where the person's key
    still exists; an erased person's events keep only what was readable."""
    blobs = [_blob(e) for e in events]
    wanted = {i for b in blobs if b is not None and (i := key_id_of(b)) is not None}
    if not wanted:
        return list(events)
    ring = keys.keys_by_id(wanted)
    return [e if b is None else _restore(e, b, ring) for e, b in zip(events, blobs, strict=True)]


def _restore(event: Touchpoint, blob: bytes, ring: dict[int, PersonKey]) -> Touchpoint:
    key_id = key_id_of(blob)
    key = ring.get(key_id) if key_id is not None else None
    plain = open_sealed(key.cipher, blob, event.event_id.encode()) if key is not None else None
    if plain is None:  # erased (or not ours): what stays readable, without the blob
        extra = {k: v for k, v in event.extra.items() if k != SEALED}
        return _rebuilt(event, event.properties, extra)
    part = orjson.loads(plain)
    props = {**event.properties, **part["p"]}
    return _rebuilt(event, props, dict(part["x"]))


def is_sealed(event: Touchpoint) -> bool:
    return bool(event.extra) and SEALED in event.extra


# --------------------------------------------------------------------------- dead letters


def seal_text(key: PersonKey, text: str) -> str:
    blob = seal(key, text.encode("utf-8", errors="surrogatepass"), DLQ_CONTEXT)
    return DLQ_PREFIX + base64.b64encode(blob).decode("ascii")


def unseal_texts(texts: Iterable[str], keys: KeyRing) -> list[str]:
    """Dead letters' raw texts in the clear; ``(erased)`` where the key is gone."""
    items = list(texts)
    blobs: list[bytes | None] = []
    for text in items:
        blob = None
        if text.startswith(DLQ_PREFIX):
            try:
                blob = base64.b64decode(text[len(DLQ_PREFIX) :], validate=True)
            except (binascii.Error, ValueError):
                blob = None
        blobs.append(blob)
    wanted = {i for b in blobs if b is not None and (i := key_id_of(b)) is not None}
    ring = keys.keys_by_id(wanted) if wanted else {}
    out: list[str] = []
    for text, blob in zip(items, blobs, strict=True):
        if blob is None:
            out.append(text)
            continue
        key_id = key_id_of(blob)
        key = ring.get(key_id) if key_id is not None else None
        plain = open_sealed(key.cipher, blob, DLQ_CONTEXT) if key is not None else None
        out.append(ERASED_TEXT if plain is None else plain.decode("utf-8", "surrogatepass"))
    return out


def person_in_raw(raw: str) -> str | None:
    """The person a rejected input names (its customer_id, else anonymous_id),
    when the raw text is a JSON object that has one; else None."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    for name in ("customer_id", "anonymous_id", "userId", "anonymousId"):
        found = value.get(name)
        if isinstance(found, str) and 0 < len(found) <= 128 and "\x00" not in found:
            return found
    return None
