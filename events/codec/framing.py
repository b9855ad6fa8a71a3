"""Single-object framing and batch decoding, shared by every record kind.

Decoding is the engine's hot path, so the readers are parsed once per
process, looked up with one dict hit on the 10-byte header, and a batch of
bodies with the same header is decoded by a single fastavro call (see
``SingleObjectCodec.decode_many``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from io import BytesIO
from typing import Any, Generic, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from events.codec.resolution import Reader, leading_string, varint
from events.codec.schemas import (
    HEADER_SIZE,
    MARKER,
    AvroSchema,
    CodecError,
    as_record_schema,
    header,
    load_current_schema,
    load_history,
)

T = TypeVar("T")


class SingleObjectCodec(ABC, Generic[T]):
    """Single-object framing and batch decoding, shared by every record kind.

    Subclasses only map between their value type and the Avro record dict.
    """

    _schema_name: str
    _first_field: str  # a string field, used to check record boundaries in a batch

    def __init__(self, extra_writers: Iterable[dict[str, Any]] = ()) -> None:
        """``extra_writers``: writer schemas known from elsewhere (a registry,
        another tool's export) whose data should read too, beside the history.
        """
        current = load_current_schema(self._schema_name)
        self._schema = current
        self._header = header(current)
        readers = {self._header: Reader.build(current, current)}
        writers = [*load_history(self._schema_name)]
        for raw in extra_writers:
            try:
                writers.append(as_record_schema(parse_schema(raw)))
            except Exception as exc:
                raise CodecError(f"bad writer schema for {self._schema_name}: {exc}") from exc
        for old in writers:
            readers.setdefault(header(old), Reader.build(old, current))
        self._readers = readers

    # -- mapping, per subclass

    @abstractmethod
    def _to_record(self, value: T) -> dict[str, Any]: ...

    @abstractmethod
    def _from_record(self, record: dict[str, Any]) -> T: ...

    @abstractmethod
    def _key(self, value: T) -> str:
        """The value's id, so an encode error names the event it is about."""
        ...

    # -- encoding

    @property
    def schema(self) -> AvroSchema:
        return self._schema

    @property
    def fingerprints(self) -> frozenset[bytes]:
        """Every writer fingerprint this codec reads (current and history)."""
        return frozenset(h[2:] for h in self._readers)

    def encode(self, value: T) -> bytes:
        out = BytesIO()
        out.write(self._header)
        self._write(out, value)
        return out.getvalue()

    def encode_many(self, values: Iterable[T]) -> list[bytes]:
        """Reuses one buffer: the per-call allocation is most of a small encode."""
        out = BytesIO()
        results: list[bytes] = []
        head = self._header
        for value in values:
            out.seek(0)
            out.truncate()
            out.write(head)
            self._write(out, value)
            results.append(out.getvalue())
        return results

    def _write(self, out: BytesIO, value: T) -> None:
        record = self._to_record(value)
        try:
            schemaless_writer(out, self._schema, record)
        except Exception as exc:
            raise CodecError(
                f"cannot encode {self._schema_name} {self._key(value)!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # -- decoding

    def decode(self, data: bytes) -> T:
        try:
            reader = self._readers.get(data[:HEADER_SIZE])
        except TypeError:
            raise self._not_bytes(data) from None
        if reader is None:
            raise self._header_error(data)
        return self._from_record(self._read_one(reader, data))

    def decode_many(self, payloads: Sequence[bytes]) -> list[T | CodecError]:
        """Decode a batch; a poison payload yields a CodecError in its own slot.

        Payloads sharing a header are joined into one Avro array and read by a
        single fastavro call, which removes fastavro's per-call set-up (a fifth
        to a quarter of the cost of a small record). Joining loses the per-record
        boundaries, so they are checked afterwards: the array must end exactly
        at the end of the buffer and each record's first string must equal the
        bytes at the start of its own body. A truncated or padded body shifts
        every later record and fails those checks; then that group is decoded
        again one payload at a time, so only the bad payloads get errors.
        """
        results: list[T | CodecError] = [None] * len(payloads)  # type: ignore[list-item]
        groups: dict[bytes, list[int]] = {}
        for index, payload in enumerate(payloads):
            try:
                head = payload[:HEADER_SIZE]
                members = groups.get(head)
            except TypeError:  # not bytes: a Kafka tombstone (None), a memoryview...
                results[index] = self._not_bytes(payload)
                continue
            if members is None:
                groups[head] = [index]
            else:
                members.append(index)
        for head, members in groups.items():
            reader = self._readers.get(head)
            if reader is None:
                for index in members:
                    results[index] = self._header_error(payloads[index])
                continue
            bodies = [payloads[index] for index in members]
            decoded = self._read_batch(reader, bodies) if len(bodies) > 1 else None
            if decoded is not None:
                from_record = self._from_record
                for index, record in zip(members, decoded, strict=True):
                    try:
                        results[index] = from_record(record)
                    except CodecError as exc:
                        results[index] = exc
                continue
            for index in members:
                try:
                    results[index] = self._from_record(self._read_one(reader, payloads[index]))
                except CodecError as exc:
                    results[index] = exc
        return results

    def _read_one(self, reader: Reader, data: bytes) -> dict[str, Any]:
        stream = BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record = cast(dict[str, Any], schemaless_reader(stream, reader.writer, reader.reader))
        except EOFError:
            raise CodecError(
                f"truncated {self._schema_name} body ({len(data)} bytes in all)"
            ) from None
        except Exception as exc:
            raise CodecError(
                f"corrupt {self._schema_name} body: {type(exc).__name__}: {exc}"
            ) from exc
        if stream.tell() != len(data):
            raise CodecError(
                f"corrupt {self._schema_name} body: {len(data) - stream.tell()} "
                "trailing bytes after the record"
            )
        if reader.added:
            reader.upgrade([record])
        return record

    def _read_batch(self, reader: Reader, payloads: list[bytes]) -> list[dict[str, Any]] | None:
        """One fastavro call for many bodies, or None when any boundary is off."""
        buffer = b"".join(
            [varint(len(payloads)), *[payload[HEADER_SIZE:] for payload in payloads], b"\x00"]
        )
        stream = BytesIO(buffer)
        try:
            records = cast(
                list[dict[str, Any]],
                schemaless_reader(stream, reader.batch_writer, reader.batch_reader),
            )
        except Exception:
            return None
        if stream.tell() != len(buffer) or len(records) != len(payloads):
            return None
        first = self._first_field
        start = HEADER_SIZE + 1
        try:
            for payload, record in zip(payloads, records, strict=True):
                length = payload[HEADER_SIZE]  # IndexError for a header-only payload
                if length < 0x80 and not length & 1:  # a one-byte length: ids under 64 bytes
                    expected: bytes | None = payload[start : start + (length >> 1)]
                else:
                    expected = leading_string(payload, HEADER_SIZE)
                if record[first].encode() != expected:
                    return None
        except (IndexError, KeyError, AttributeError):
            return None
        if reader.added:
            reader.upgrade(records)
        return records

    def _not_bytes(self, data: object) -> CodecError:
        return CodecError(f"a {self._schema_name} payload must be bytes, not {type(data).__name__}")

    def _header_error(self, data: bytes) -> CodecError:
        if len(data) < HEADER_SIZE:
            return CodecError(
                f"not a single-object {self._schema_name}: {len(data)} bytes, "
                f"shorter than the {HEADER_SIZE}-byte header"
            )
        if data[:2] != MARKER:
            return CodecError(
                f"not a single-object {self._schema_name}: marker {data[:2].hex()} "
                f"instead of {MARKER.hex()}"
            )
        return CodecError(
            f"unknown {self._schema_name} writer schema, fingerprint "
            f"{data[2:HEADER_SIZE].hex()} (known: "
            f"{', '.join(sorted(fp.hex() for fp in self.fingerprints))})"
        )


class DataclassCodec(SingleObjectCodec[T]):
    """A codec whose values are built from the record's fields by name (the
    control records of ``events.clock`` and ``events.control``); subclasses
    name the type and the fields, and map any field that differs."""

    _type: Callable[..., T]
    _fields: tuple[str, ...]

    def _to_record(self, value: T) -> dict[str, Any]:
        return {name: getattr(value, name) for name in self._fields}

    def _from_record(self, record: dict[str, Any]) -> T:
        return self._type(**{name: record[name] for name in self._fields})
