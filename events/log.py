"""The ``Log`` port: an append-only, partitioned log of encoded records.

Two adapters implement it: PostgreSQL (``events.adapters.postgres``, the
embedded default) and Kafka (``events.adapters.kafka``, scale-out). Consumers
never store their offsets in the log: offsets are committed to PostgreSQL in
the same transaction as the state they produced (``projections.store``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TOUCHPOINTS = "touchpoints"
TRIGGERS = "triggers"


@dataclass(frozen=True, slots=True)
class LogRecord:
    partition: int
    offset: int
    key: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Entry:
    """One record to append: its id is the idempotency key (a repeat is a duplicate)."""

    record_id: str
    key: str
    payload: bytes
    occurred_at: int
    type: str = ""


@dataclass(slots=True)
class AppendResult:
    accepted: int = 0
    duplicates: list[str] = field(default_factory=list)

    def __iadd__(self, other: AppendResult) -> AppendResult:
        self.accepted += other.accepted
        self.duplicates.extend(other.duplicates)
        return self


class Log(Protocol):
    """A partitioned log; records of one key are kept in order on one partition."""

    refuses_repeated_ids: bool
    """A capability: True when ``append`` refuses an id already on the stream.
    A log that cannot look ids up (Kafka) refuses repeats only within one
    append; its readers then drop repeats themselves (``Pipeline``'s
    ``drop_repeated_ids``), and the contract suite expects the difference."""

    @property
    def partitions(self) -> int: ...

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        """Append atomically; entries whose id is already on the stream are duplicates."""
        ...

    def read(self, stream: str, positions: Mapping[int, int], limit: int) -> list[LogRecord]:
        """Records at or after each partition's position, at most ``limit`` per partition,
        in offset order within each partition."""
        ...

    def heads(self, stream: str) -> dict[int, int]:
        """The next offset to be written, per partition (= records written so far)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until something may have been appended, or the timeout passes."""
        ...

    def close(self) -> None: ...


READ_CHUNK = 20_000
"""Records per partition per read in ``read_stream``: large enough to amortise
the round trip and the batched Avro decode, small enough to keep memory flat."""


def read_stream(
    log: Log,
    stream: str,
    on_progress: Callable[[int], None] | None = None,
    partitions: Collection[int] | None = None,
) -> Iterator[list[LogRecord]]:
    """Every record on ``stream`` (or on some of its partitions) up to its head
    at the start, in chunks. Only the port's ``read``/``heads`` are used, so
    backtests, exports and an adapter's own scans work on any log."""
    heads = log.heads(stream)
    positions = {
        p: 0 for p, head in heads.items() if head > 0 and (partitions is None or p in partitions)
    }
    done = 0
    while positions:
        records = log.read(stream, positions, READ_CHUNK)
        if not records:
            break
        for record in records:
            positions[record.partition] = record.offset + 1
        positions = {p: o for p, o in positions.items() if o < heads[p]}
        done += len(records)
        if on_progress is not None:
            on_progress(done)
        yield records
