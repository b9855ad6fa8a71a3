"""The ``Log`` port and the dead-letter sink in memory.

For tests of everything above the log (the pipeline, the processor loop, the
rules over a published history) that should take milliseconds, not a
database. It keeps the contract the other adapters keep (the same suite runs
on it): per-key order on the key's partition, consecutive offsets from zero,
repeated ids refused as duplicates, ``wait`` woken by an append.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from events.dead_letters import DeadLetterRow
from events.log import AppendResult, Entry, LogRecord
from events.partitioning import partition_for


class MemoryLog:
    refuses_repeated_ids = True

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._streams: dict[str, list[list[LogRecord]]] = {}
        self._ids: dict[str, set[str]] = {}
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
                parts[p].append(LogRecord(p, len(parts[p]), entry.key, entry.payload))
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

    def close(self) -> None:
        pass


class MemoryDeadLetters:
    """The dead-letter sink: rows kept in a list, in arrival order."""

    def __init__(self) -> None:
        self.rows: list[DeadLetterRow] = []

    def add(self, rows: Sequence[DeadLetterRow]) -> None:
        self.rows.extend(rows)

    def count(self) -> int:
        return len(self.rows)
