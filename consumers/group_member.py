"""A member of the Kafka consumer group: applies the batches of the partitions
the group assigned it (what a Faust worker's agent and timer call).

A Faust worker does not choose its partitions: the group assigns them, and a
rebalance can hand a partition to another worker while records of it are in
flight. So every batch locks the PostgreSQL offsets of its partitions first
and drops the records below them: whichever worker commits a record first
applies it, the other drops it, and a rebalance never double-applies. The
rest is the one pipeline (``consumers.pipeline``), in the same transaction.

After each commit the outbox relay moves triggers to the triggers topic and
the dead-letter relay copies rejections to the dlq topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence

from consumers.dlq_relay import DeadLetterRelay
from consumers.pipeline import BatchResult, Pipeline
from consumers.relay import OutboxRelay
from events.errors import StorageError
from events.log import TOUCHPOINTS, Log, LogRecord
from events.model import Micros
from projections.ports import ProjectionStore

log = logging.getLogger("engage.worker")


class GroupMember:
    """One worker's side of the group: ``apply`` a batch, ``tick`` the clocks
    of quiet partitions, ``positions`` to seek to after a rebalance."""

    def __init__(
        self,
        store: ProjectionStore,
        pipeline: Pipeline,
        relay: OutboxRelay | None = None,
        dlq_relay: DeadLetterRelay | None = None,
        now: Micros | None = None,
        log: Log | None = None,
        wall: Callable[[], Micros] | None = None,
        clock_step: Micros = 60_000_000,
    ) -> None:
        """``log`` and ``wall``: where clock records for quiet partitions go, and
        the live clock floor (wall time minus lateness) they carry."""
        self.store = store
        self.pipeline = pipeline
        self.relay = relay
        self.dlq_relay = dlq_relay
        self.now = now
        self.log = log
        self.wall = wall
        self.clock_step = clock_step
        # the agent and the timer tick run in threads; one store connection
        self._lock = threading.Lock()

    def apply(self, records: Sequence[LogRecord], caught_up: Collection[int]) -> BatchResult:
        """One transaction: lock offsets, drop what is already applied, run the pipeline."""
        with self._lock:
            with self.pipeline.transaction(self.store) as tx:
                parts = sorted({r.partition for r in records})
                positions = tx.lock_offsets(self.pipeline.consumer, TOUCHPOINTS, parts)
                fresh = [r for r in records if r.offset >= positions[r.partition]]
                if not fresh:
                    return BatchResult()
                result = self.pipeline.process(tx, fresh, positions, self.now, caught_up)
            self._relay()
        return result

    def tick(self, caught_up: Collection[int]) -> BatchResult:
        """Move the clocks of partitions with nothing unread: append clock
        records (at ``now``, else at the wall floor once a partition is a
        ``clock_step`` behind) that the agent then reads like any record."""
        if not caught_up or self.log is None:
            return BatchResult()
        if self.now is None and self.wall is None:
            return BatchResult()
        with self._lock, self.pipeline.transaction(self.store) as tx:
            tx.lock_offsets(self.pipeline.consumer, TOUCHPOINTS, caught_up)
            if self.now is not None:
                at, step, source = self.now, 1, "now"
            else:
                assert self.wall is not None
                at, step, source = self.wall(), self.clock_step, "wall"
            advances = self.pipeline.clock_advances(
                tx, caught_up, self.log.partitions, at, step, source
            )
        if not advances:
            return BatchResult()
        return BatchResult(records=self.log.append(TOUCHPOINTS, advances).accepted)

    def positions(self) -> dict[int, int]:
        """The committed positions in PostgreSQL: where an assigned partition resumes."""
        with self._lock:
            return self.store.offsets(self.pipeline.consumer, TOUCHPOINTS)

    def _relay(self) -> None:
        """Best effort: the batch is committed and the rows stay pending, so a
        broker that is down for longer than the producer retries only delays
        them to the next batch or tick; it must not stop the worker."""
        try:
            if self.relay is not None:
                self.relay.drain()
            if self.dlq_relay is not None:
                self.dlq_relay.drain()
        except StorageError as exc:
            log.warning("relay postponed: %s", exc)
