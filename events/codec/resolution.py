"""Reading an entry written by any known schema version, fast.

A writer schema is compiled once into a ``Reader``: the schemas for one
record and for a batch of records, and, when the writer is the current schema
minus fields with defaults (how the envelope evolves), those defaults to set
after reading, which is about twice as fast as fastavro's schema resolution.
Also the two Avro varint helpers batch decoding needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from events.codec.schemas import AvroSchema


def varint(value: int) -> bytes:
    """Zigzag varint, for the block count of the batch array."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def leading_string(body: bytes | bytearray | memoryview, pos: int) -> bytes | None:
    """The raw bytes of the Avro string starting at ``pos``, or None if malformed."""
    shift = 0
    n = 0
    end = len(body)
    while True:
        if pos >= end or shift > 63:
            return None
        byte = body[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    length = (n >> 1) ^ -(n & 1)
    if length < 0 or pos + length > end:
        return None
    return bytes(body[pos : pos + length])


@dataclass(frozen=True, slots=True)
class Reader:
    """Everything needed to read one writer schema, compiled once."""

    writer: AvroSchema
    reader: AvroSchema | None  # None: the writer schema alone gives the current shape
    batch_writer: AvroSchema
    batch_reader: AvroSchema | None
    added: tuple[tuple[str, Callable[[], Any]], ...]  # filled in after reading

    @classmethod
    def build(cls, writer: AvroSchema, current: AvroSchema) -> Reader:
        added = () if writer is current else added_fields(writer, current)
        if added is None:  # a change only fastavro's schema resolution can bridge
            return cls(
                writer=writer,
                reader=current,
                batch_writer=as_batch_schema(writer),
                batch_reader=as_batch_schema(current),
                added=(),
            )
        return cls(
            writer=writer,
            reader=None,
            batch_writer=as_batch_schema(writer),
            batch_reader=None,
            added=added,
        )

    def upgrade(self, records: list[dict[str, Any]]) -> None:
        for name, make in self.added:
            for record in records:
                record[name] = make()


def added_fields(
    writer: AvroSchema, reader: AvroSchema
) -> tuple[tuple[str, Callable[[], Any]], ...] | None:
    """The fields to default when ``writer`` is ``reader`` minus some fields.

    That is how the envelope evolves (add a field with a default), and for it
    fastavro's general schema resolution costs about half the decode rate.
    Reading with the writer schema and setting the defaults afterwards gives
    the same records at full speed. Proven equal rather than assumed: the
    reader restricted to the writer's fields must have the writer's Parsing
    Canonical Form, and the defaults come from fastavro resolving an empty
    record. Anything else returns None and goes through fastavro.
    """
    if writer.get("type") != "record" or writer.get("name") != reader.get("name"):
        return None
    by_name = {field["name"]: field for field in reader["fields"]}
    kept = [field["name"] for field in writer["fields"]]
    if any(name not in by_name for name in kept):
        return None
    written = {field["name"]: field for field in writer["fields"]}
    subset = {**reader, "fields": [_as_written(by_name[name], written[name]) for name in kept]}
    try:
        if to_parsing_canonical_form(subset) != to_parsing_canonical_form(writer):
            return None
        missing = [field for field in reader["fields"] if field["name"] not in kept]
        if not all("default" in field for field in missing):
            return None
        name = reader["name"]
        empty = parse_schema({"type": "record", "name": name, "fields": []})
        wanted = parse_schema({"type": "record", "name": name, "fields": missing})
        defaults = cast(dict[str, Any], schemaless_reader(BytesIO(b""), empty, wanted))
    except Exception:
        return None
    return tuple((field, factory(value)) for field, value in defaults.items())


def _as_written(field: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """A reader field whose union appends branches to the writer's union
    (how a new payload type is added), cut to the writer's branches: then the
    canonical-form comparison proves the writer's branches are the reader's
    first ones, in order, so a value read with the writer schema is the value
    resolution would give."""
    ours, theirs = field["type"], written["type"]
    if isinstance(ours, list) and isinstance(theirs, list) and len(theirs) < len(ours):
        return {**field, "type": ours[: len(theirs)]}
    return field


def factory(value: Any) -> Callable[[], Any]:
    """Fresh defaults per record, so no two decoded events share a mutable value."""
    if value == {} and isinstance(value, dict):
        return dict
    if value == [] and isinstance(value, list):
        return list
    if isinstance(value, dict | list):
        return lambda: copy.deepcopy(value)
    return lambda: value


def as_batch_schema(item: AvroSchema) -> AvroSchema:
    """An array of ``item``: how a batch of bodies is read in one call."""
    return cast(AvroSchema, parse_schema({"type": "array", "items": item}))
