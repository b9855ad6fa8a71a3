"""The ``Log``, ``CustomerHistory`` and ``DeadLetterStore`` ports in memory.

For tests of everything above the log (the pipeline, the processor loop, the
rules over a published history) that should take milliseconds, not a
database. It keeps the contract the other adapters keep (the same suite runs
on it): per-key order on the key's partition, consecutive offsets from zero,
repeated ids refused as duplicates, ``wait`` woken by an append; a
customer's history and the fired triggers read back as the PostgreSQL log
answers them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

from events.dead_letters import DeadLetter, DeadLetterRow, capped
from events.log import TOUCHPOINTS, TRIGGERS, AppendResult, Entry, LogRecord
from events.model import Micros
from events.partitioning import partition_for
from events.ports import ALL_TRIGGERS, TriggerQuery


class MemoryLog:
    refuses_repeated_ids = True
    history_filters_by_time = True
    """``customer_history`` applies ``until`` itself (a capability: Kafka's cannot)."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._streams: dict[str, list[list[LogRecord]]] = {}
        self._ids: dict[str, set[str]] = {}
        # per stream, every accepted entry beside its record: the history reads
        self._entries: dict[str, list[tuple[LogRecord, Entry]]] = {}
        self._changed = threading.Condition()
        self._version = 0

    @property
    def partitions(self) -> int:
        return self._partitions

    def _stream(self, stream: str) -> list[list[LogRecord]]:
        found = self._streams.get(stream)
        if found is None:
            found = self._streams[stream] = [[] for _ in range(self._partitions)]
            self._ids[stream] = set()
            self._entries[stream] = []
        return found

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        result = AppendResult()
        with self._changed:
            parts, ids = self._stream(stream), self._ids[stream]
            for entry in entries:
                if entry.record_id in ids:
                    result.duplicates.append(entry.record_id)
                    continue
                ids.add(entry.record_id)
                p = partition_for(entry.key, self._partitions)
                record = LogRecord(p, len(parts[p]), entry.key, entry.payload)
                parts[p].append(record)
                self._entries[stream].append((record, entry))
                result.accepted += 1
            if result.accepted:
                self._version += 1
                self._changed.notify_all()
        return result

    def read(self, stream: str, positions: Mapping[int, int], limit: int) -> list[LogRecord]:
        with self._changed:
            parts = self._stream(stream)
            out: list[LogRecord] = []
            for p in sorted(positions):
                out.extend(parts[p][positions[p] : positions[p] + limit])
            return out

    def heads(self, stream: str) -> dict[int, int]:
        with self._changed:
            return {p: len(records) for p, records in enumerate(self._stream(stream))}

    def wait(self, timeout: float) -> bool:
        with self._changed:
            seen = self._version
            return self._changed.wait_for(lambda: self._version != seen, timeout)

    def customer_history(self, customer_id: str, until: int | None = None) -> list[LogRecord]:
        with self._changed:
            self._stream(TOUCHPOINTS)
            found = [
                record
                for record, entry in self._entries[TOUCHPOINTS]
                if entry.key == customer_id and (until is None or entry.occurred_at <= until)
            ]
        return sorted(found, key=lambda r: r.offset)

    def customer_histories(self, customer_ids: Collection[str]) -> dict[str, list[LogRecord]]:
        found = {c: self.customer_history(c) for c in customer_ids}
        return {c: records for c, records in found.items() if records}

    def find_triggers(self, query: TriggerQuery = ALL_TRIGGERS) -> list[LogRecord]:
        with self._changed:
            self._stream(TRIGGERS)
            found = [
                (entry.occurred_at, entry.record_id, record)
                for record, entry in self._entries[TRIGGERS]
                if query.matches(entry.key, entry.type, entry.occurred_at)
            ]
        found.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in found[: query.limit]]

    def close(self) -> None:
        pass


def wall_micros() -> Micros:
    return time.time_ns() // 1_000


class MemoryDeadLetters:
    """The dead-letter store: rows kept in a list, in arrival order, raw text
    capped as the PostgreSQL store caps it. ``clock`` stands in for the
    database's ``now()`` as the receipt time."""

    def __init__(self, clock: Callable[[], Micros] = wall_micros) -> None:
        self._clock = clock
        self._rows: list[tuple[Micros, DeadLetter]] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, rows: Sequence[DeadLetterRow]) -> None:
        with self._lock:
            for stage, source, line_no, event_id, field, reason, raw in rows:
                kept, size, sha = capped(raw)
                at = self._clock()
                received = datetime.fromtimestamp(at // 1_000_000, UTC)
                letter = DeadLetter(
                    self._next_id,
                    received.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    stage,
                    source,
                    line_no,
                    event_id,
                    field,
                    reason,
                    kept,
                    size,
                    sha,
                )
                self._rows.append((at, letter))
                self._next_id += 1

    @property
    def rows(self) -> list[DeadLetterRow]:
        """What was added, as rows (the raw text as kept)."""
        with self._lock:
            return [
                (d.stage, d.source, d.line_no, d.event_id, d.field, d.reason, d.raw)
                for _, d in self._rows
            ]

    def list(self, limit: int = 100, before: int | None = None) -> list[DeadLetter]:
        with self._lock:
            found = [d for _, d in self._rows if before is None or d.id < before]
        return found[-limit:] if limit > 0 else []

    def purge(self, before: Micros) -> int:
        with self._lock:
            kept = [(at, d) for at, d in self._rows if at >= before]
            gone = len(self._rows) - len(kept)
            self._rows = kept
        return gone

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def close(self) -> None:
        pass
