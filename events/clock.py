"""Clock records: advances of a partition's clock that no touchpoint caused.

The processor's clock on a partition is the latest instant read from it: a
touchpoint's ``occurred_at`` or a clock record's ``at``. When a live processor
is caught up, it appends a clock record at the wall time minus the allowed
lateness (or at ``--now``) to each quiet partition, then reads it back like
any record. Timers therefore fire with no traffic at all, and a replay, which
reads the same records in the same order, reaches the same clock at the same
positions and fires the same timers without being told the time.

A clock record is written to the partition it advances: its key is a string
chosen to hash to that partition (``clock_key``), so both log adapters place
it with their usual partitioner. Its own Avro schema (``engage.ClockRecord``)
gives it a fingerprint of its own, so readers of touchpoints tell it apart by
the first ten bytes without decoding (``is_clock``).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from events.codec import HEADER_SIZE, DataclassCodec
from events.log import Entry
from events.model import ClockRecord, Micros
from events.partitioning import partition_for

CLOCK_SCHEMA: Final = "engage.ClockRecord"
CLOCK_TYPE: Final = "~clock"
"""The ``type`` column a clock record has on the PostgreSQL log."""


class ClockCodec(DataclassCodec[ClockRecord]):
    _schema_name = CLOCK_SCHEMA
    _first_field = "source"
    _type = ClockRecord
    _fields = ("partition", "at", "source")

    def _key(self, value: ClockRecord) -> str:
        return f"{value.partition}@{value.at}"


@cache
def clock_codec() -> ClockCodec:
    return ClockCodec()


@cache
def _header() -> bytes:
    return clock_codec()._header


def is_clock(payload: bytes) -> bool:
    """True for a clock record's payload (its schema fingerprint), without decoding."""
    return payload[:HEADER_SIZE] == _header()


@cache
def clock_key(partition: int, partitions: int) -> str:
    """The first ``~clock-N`` key that hashes to ``partition``: deterministic,
    and never a customer id (ingest ids cannot start with ``~``... and even if
    one did, no profile is ever folded from a clock record)."""
    return key_for("~clock", partition, partitions)


@cache
def key_for(prefix: str, partition: int, partitions: int) -> str:
    """The first ``<prefix>-N`` key that hashes to ``partition``: how a control
    record (``events.control``) reaches the partition it is for through either
    log adapter's usual partitioner."""
    n = 0
    while True:
        key = f"{prefix}-{n}"
        if partition_for(key, partitions) == partition:
            return key
        n += 1


def clock_entry(partition: int, partitions: int, at: Micros, source: str = "wall") -> Entry:
    """A log entry advancing ``partition``'s clock to ``at``. Its id names the
    instant, so appending the same advance twice is a duplicate, not a second record."""
    record = ClockRecord(partition, at, source)
    return Entry(
        f"~clock/{partition}/{at}",
        clock_key(partition, partitions),
        clock_codec().encode(record),
        at,
        CLOCK_TYPE,
    )
