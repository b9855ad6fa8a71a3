"""The armed timers of the customers one writer owns, due-ordered in memory.

The pipeline's single writer of a partition keeps this queue, as it keeps the
profile cache: a batch asks it which customers have a timer due before the
partition's clock (a heap pop, no query), and re-arms the customers it
changed. The queue is persisted as rows of the ``timers`` table in the batch
transaction, and rebuilt from those rows whenever the writer's memory might be
stale (another writer took the partition, or a batch did not commit).

Heap entries are never removed when a customer re-arms; a popped entry that no
longer matches the customer's armed set is skipped, so a re-arm costs one
push, not a search.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from events.model import Micros

Armed = dict[str, Micros]
"""rule_id -> due instant."""


class TimerQueue:
    __slots__ = ("_armed", "_heaps")

    def __init__(self) -> None:
        self._armed: dict[str, tuple[int, Armed]] = {}
        self._heaps: dict[int, list[tuple[Micros, str]]] = {}

    def __len__(self) -> int:
        return len(self._armed)

    def clear(self) -> None:
        self._armed.clear()
        self._heaps.clear()

    def load(self, rows: Iterable[tuple[str, str, Micros, int]]) -> None:
        """Add stored (customer_id, rule_id, due, partition) rows."""
        grouped: dict[str, tuple[int, Armed]] = {}
        for customer_id, rule_id, due, partition in rows:
            entry = grouped.get(customer_id)
            if entry is None:
                grouped[customer_id] = (partition, {rule_id: due})
            else:
                entry[1][rule_id] = due
        for customer_id, (partition, armed) in grouped.items():
            self.arm(customer_id, partition, armed)

    def arm(self, customer_id: str, partition: int, armed: Armed) -> None:
        """Replace the customer's armed timers (an empty dict disarms them)."""
        old = self._armed.get(customer_id)
        if not armed:
            if old is not None:
                del self._armed[customer_id]
            return
        self._armed[customer_id] = (partition, armed)
        first = min(armed.values())
        if old is not None and old[1] and min(old[1].values()) == first:
            return  # the heap already holds an entry at that instant
        heapq.heappush(self._heaps.setdefault(partition, []), (first, customer_id))

    def armed(self, customer_id: str) -> Armed:
        entry = self._armed.get(customer_id)
        return {} if entry is None else entry[1]

    def pop_due(self, partition: int, limit: Micros) -> list[str]:
        """Customers of ``partition`` with a timer due strictly before ``limit``.

        They leave the queue entirely; the caller fires their timers and
        re-arms them from the profile (``arm``), which pushes afresh."""
        heap = self._heaps.get(partition)
        if not heap:
            return []
        out: list[str] = []
        armed = self._armed
        while heap and heap[0][0] < limit:
            due, customer_id = heapq.heappop(heap)
            entry = armed.get(customer_id)
            if entry is None or min(entry[1].values()) != due:
                continue  # stale: re-armed or disarmed since this entry was pushed
            del armed[customer_id]
            out.append(customer_id)
        return out
