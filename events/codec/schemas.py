"""The Avro schemas the log is written with, and the single-object header.

Schemas ship inside the ``schemas`` package: the current version of each
record beside its named types, and every earlier version, self-contained, in
``schemas/history/``. A header is ``C3 01`` plus the CRC-64-AVRO fingerprint
of the writer schema's Parsing Canonical Form (the Avro specification's
"single object encoding"), so every entry names the schema that wrote it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO
from typing import Any, Final

from fastavro import parse_schema, schemaless_writer
from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import load_schema, to_parsing_canonical_form

from events.errors import EngageError

AvroSchema = dict[str, Any]
"""A schema as fastavro parses it (a JSON object with fastavro's hints)."""

MARKER: Final = b"\xc3\x01"
HEADER_SIZE: Final = 10
NAMESPACE: Final = "engage"
TOUCHPOINT_SCHEMA: Final = "engage.Touchpoint"
TRIGGER_SCHEMA: Final = "engage.Trigger"

_SCHEMA_PACKAGE: Final = "schemas"
_HISTORY_DIR: Final = "history"


class CodecError(EngageError):
    """A payload that cannot be decoded, or a value that cannot be encoded.

    Raised for one entry, or returned in its slot by ``decode_many``, so one
    poison entry goes to the dead-letter store while its neighbours proceed.
    """


class _ResourceRepository(AbstractSchemaRepository):
    """Resolves named types through ``importlib.resources``.

    fastavro's default repository opens files by path, which fails when the
    ``schemas`` package is imported from a zip; a Traversable works either way.
    """

    def __init__(self, root: Traversable) -> None:
        self._root = root

    def load(self, name: str) -> Any:
        try:
            return json.loads(self._root.joinpath(f"{name}.avsc").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaRepositoryError(f"cannot load schema {name!r}: {exc}") from exc


def as_record_schema(parsed: object) -> AvroSchema:
    """A parsed schema that must be a record (every log schema is one)."""
    if not isinstance(parsed, dict):
        raise CodecError(f"expected a record schema, got {type(parsed).__name__}")
    return parsed


def _schema_root() -> Traversable:
    return resources.files(_SCHEMA_PACKAGE)


@cache
def load_current_schema(name: str) -> AvroSchema:
    """The current version of ``name`` (e.g. ``engage.Touchpoint``), parsed once.

    Named types are resolved from sibling files, so each payload record lives
    in its own ``.avsc`` as the schema layout promises.
    """
    return as_record_schema(load_schema(name, repo=_ResourceRepository(_schema_root())))


@cache
def load_history(name: str) -> tuple[AvroSchema, ...]:
    """Every earlier version of ``name`` kept in ``schemas/history/``.

    History files are self-contained (named types inlined) so a version can be
    read without the sibling files of its day, which may since have changed.
    Sorted by version so ``load_history(name)[0]`` is the first ever written.
    """
    folder = _schema_root().joinpath(_HISTORY_DIR)
    pattern = re.compile(rf"^{re.escape(name)}\.v(\d+)\.avsc$")
    found: list[tuple[int, AvroSchema]] = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match:
            raw = json.loads(entry.read_text("utf-8"))
            found.append((int(match.group(1)), as_record_schema(parse_schema(raw))))
    found.sort(key=lambda pair: pair[0])
    return tuple(schema for _, schema in found)


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_EMPTY: Final = 0xC15D213AA4D7A795
_CRC64_TABLE: Final = _crc64_table()


def fingerprint(schema: AvroSchema) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, little-endian, as the spec's header.

    Computed here rather than via fastavro's hex string so the byte order is
    explicit; it runs once per schema per process.
    """
    fp = _CRC64_EMPTY
    for byte in to_parsing_canonical_form(schema).encode("utf-8"):
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def header(schema: AvroSchema) -> bytes:
    """The 10 bytes every entry written with ``schema`` starts with."""
    return MARKER + fingerprint(schema)


def write_single_object(schema: AvroSchema, record: dict[str, Any]) -> bytes:
    """Encode a plain record with any schema: for tests of old writers and tools.

    The codecs only write the current schema; this is how data in an
    older shape (a history schema) is produced to prove it still reads.
    """
    out = BytesIO()
    out.write(header(schema))
    try:
        schemaless_writer(out, schema, record)
    except Exception as exc:
        raise CodecError(f"cannot encode record: {type(exc).__name__}: {exc}") from exc
    return out.getvalue()
