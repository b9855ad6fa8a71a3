"""Avro single-object encoding of everything on the logs.

Every log entry is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint
of the writer schema's Parsing Canonical Form + the Avro binary body (the Avro
specification's "single object encoding"). The fingerprint makes each entry
self-describing without a schema registry: the reader keeps every writer schema
the project ever shipped (the current one plus ``schemas/history/``) keyed by
fingerprint and resolves each to the current reader schema, so history written
years ago still replays.

This package is the only place that imports fastavro. Its modules:

- ``schemas``: loading the schemas, fingerprints, the header, ``CodecError``;
- ``resolution``: reading an older writer's entries as the current schema;
- ``framing``: ``SingleObjectCodec``, the framing and batch decoding every
  record kind shares;
- ``json_text``: JSON-shaped values carried as Avro strings;
- ``touchpoint`` and ``trigger``: the two event codecs (the control records'
  codecs live beside their model, in ``events.clock`` and ``events.control``);
- ``identity``: the ``identity_linked`` and ``identity_unlinked`` records.

Everything is re-exported here, so ``from events.codec import X`` keeps working.
"""

from events.codec.framing import DataclassCodec, SingleObjectCodec
from events.codec.resolution import as_batch_schema
from events.codec.schemas import (
    HEADER_SIZE,
    MARKER,
    NAMESPACE,
    TOUCHPOINT_SCHEMA,
    TRIGGER_SCHEMA,
    AvroSchema,
    CodecError,
    fingerprint,
    header,
    load_current_schema,
    load_history,
    write_single_object,
)
from events.codec.touchpoint import TouchpointCodec
from events.codec.trigger import TriggerCodec

_SingleObjectCodec = SingleObjectCodec
"""The name the codec had before the split (still imported by other branches)."""
_as_batch_schema = as_batch_schema
"""The name it had before the split (tests/unit/test_schema_evolution.py)."""

__all__ = [
    "HEADER_SIZE",
    "MARKER",
    "NAMESPACE",
    "TOUCHPOINT_SCHEMA",
    "TRIGGER_SCHEMA",
    "AvroSchema",
    "CodecError",
    "DataclassCodec",
    "SingleObjectCodec",
    "TouchpointCodec",
    "TriggerCodec",
    "as_batch_schema",
    "fingerprint",
    "header",
    "load_current_schema",
    "load_history",
    "write_single_object",
]
