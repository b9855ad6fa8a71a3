"""The ports of the event layer, in one place: what adapters implement.

- ``Log``: the append-only, partitioned log (adapters: memory, PostgreSQL,
  Kafka, under ``events/adapters/``), with the records it carries;
- ``CustomerHistory``: one customer's records and the fired triggers, read
  back from the log (served by an index in PostgreSQL, by scans elsewhere);
- ``Router``: the identity stage of the publish step, which keys events by
  their person;
- ``DeadLetterSink`` and ``DeadLetterStore``: where rejected input goes, with
  its raw text, and how it is read back; ``DeadLetterTopic``: where Kafka
  mode copies it.

A difference between adapters is a declared capability (an attribute the
contract suites in ``tests/contract/`` read), never an override of a test.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from events.model import Micros, Touchpoint


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


class Router(Protocol):
    """The identity stage of the publish step (``projections.identity_router``):
    it appends a batch keyed by person, with the identity records it implies.
    ``accepted`` in its answer counts the events only."""

    def route(
        self,
        events: Sequence[Touchpoint],
        entries: Sequence[Entry],
        append: Callable[[Sequence[Entry]], AppendResult],
    ) -> AppendResult: ...


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


@dataclass(frozen=True, slots=True)
class TriggerQuery:
    """Which fired triggers to read: each filter is optional; ``limit`` keeps
    the first ones by (fired_at, trigger_id)."""

    customer_id: str | None = None
    rule_id: str | None = None
    since: int | None = None
    """Fired at or after this instant."""
    limit: int | None = None

    def matches(self, customer_id: str, rule_id: str, fired_at: int) -> bool:
        """For adapters that filter triggers themselves (memory, Kafka)."""
        return (
            (self.customer_id is None or customer_id == self.customer_id)
            and (self.rule_id is None or rule_id == self.rule_id)
            and (self.since is None or fired_at >= self.since)
        )


ALL_TRIGGERS: Final = TriggerQuery()


class CustomerHistory(Protocol):
    """What the log offers for one customer (served by an index in PostgreSQL)."""

    history_filters_by_time: bool
    """A capability: True when ``customer_history`` leaves out records after
    ``until``; False when it cannot see event times and callers filter."""

    def customer_history(self, customer_id: str, until: int | None = None) -> list[LogRecord]: ...

    def customer_histories(self, customer_ids: Collection[str]) -> dict[str, list[LogRecord]]:
        """Several customers' records at once, each in log order (customers
        without any are left out): one round trip where the adapter can, for
        the processor's re-derivation of merged persons."""
        ...

    def find_triggers(self, query: TriggerQuery = ALL_TRIGGERS) -> list[LogRecord]:
        """The fired triggers ``query`` selects, by (fired_at, trigger_id)."""
        ...


DeadLetterRow = tuple[str, str | None, int | None, str | None, str, str, str]
"""(stage, source, line_no, event_id, field, reason, raw)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: str
    stage: str
    source: str | None
    line_no: int | None
    event_id: str | None
    field: str
    reason: str
    raw: str
    raw_bytes: int | None = None
    """The size of the whole raw input; ``raw`` holds at most ``RAW_KEEP`` characters."""
    raw_sha256: str | None = None

    @property
    def truncated(self) -> bool:
        return self.raw_bytes is not None and self.raw_bytes > len(
            self.raw.encode("utf-8", errors="surrogatepass")
        )

    def as_json(self) -> dict[str, Any]:
        """As ``engage dlq --json`` and ``GET /v1/dlq`` show it."""
        return {
            "id": self.id,
            "received_at": self.received_at,
            "stage": self.stage,
            "source": self.source,
            "line": self.line_no,
            "event_id": self.event_id,
            "field": self.field,
            "reason": self.reason,
            "raw": self.raw,
            "raw_bytes": self.raw_bytes,
            "raw_sha256": self.raw_sha256,
            "truncated": self.truncated,
        }


class DeadLetterSink(Protocol):
    """What a writer of dead letters needs of the store."""

    def add(self, rows: Sequence[DeadLetterRow]) -> None: ...


class DeadLetterTopic(Protocol):
    """Where the dead-letter relay copies the store's rows in Kafka mode (the
    dlq topic, ``KafkaLog.dead_letter``)."""

    def dead_letter(self, rows: Sequence[DeadLetterRow]) -> None: ...


class DeadLetterStore(DeadLetterSink, Protocol):
    """The dead-letter store as ``engage dlq`` and ``GET /v1/dlq`` read it.

    ``add`` keeps at most ``events.dead_letters.RAW_KEEP`` characters of each raw
    text, with the whole input's size and SHA-256."""

    def list(self, limit: int = 100, before: int | None = None) -> list[DeadLetter]:
        """The newest ``limit`` dead letters with an id below ``before``, oldest first."""
        ...

    def purge(self, before: Micros) -> int:
        """Delete dead letters received before ``before``; returns how many."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...
