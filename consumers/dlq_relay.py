"""The dead-letter relay (Kafka mode): copies the dead-letter store to the dlq topic.

Rejected inputs are written to PostgreSQL first, in the transaction that
rejected them (the ingest batch, or the processor's batch for a poison
record), so the store is the record of truth; this relay then copies each row
to ``<prefix>.dlq`` and marks it. Order of effects: append, then mark; a crash
between the two copies a row twice, never zero times.
"""

from __future__ import annotations

import psycopg

from consumers.relay import Relay
from events.errors import StorageError
from events.ports import DeadLetterTopic

DLQ_RELAY_BATCH = 1_000


class DeadLetterRelay(Relay):
    def __init__(self, dsn: str, topic: DeadLetterTopic) -> None:
        super().__init__(dsn)
        self.topic = topic

    def run_once(self, limit: int = DLQ_RELAY_BATCH) -> int:
        try:
            with self._conn.transaction():
                rows = self._conn.execute(
                    "SELECT id, stage, source, line_no, event_id, field, reason, raw"
                    " FROM dead_letters WHERE relayed_at IS NULL"
                    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (limit,),
                ).fetchall()
                if not rows:
                    return 0
                self.topic.dead_letter([tuple(r[1:]) for r in rows])
                self._conn.execute(
                    "UPDATE dead_letters SET relayed_at = now() WHERE id = ANY(%s)",
                    ([r[0] for r in rows],),
                )
        except psycopg.Error as exc:
            raise StorageError(f"relaying dead letters failed: {exc}") from None
        return len(rows)
