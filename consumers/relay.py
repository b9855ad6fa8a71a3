"""The relays, and the outbox relay: moves committed triggers from the outbox
to the triggers stream.

Order of effects: append to the stream, then mark the outbox rows published.
A crash between the two re-appends the same triggers on the next run, and the
stream drops them as duplicates by ``trigger_id``, so every trigger reaches the
stream exactly once without a distributed transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import psycopg

from events.adapters.connection import connect
from events.errors import StorageError
from events.log import TRIGGERS, Entry, Log

RELAY_BATCH = 20_000


class Relay(ABC):
    """Copies rows committed in PostgreSQL to a log, a batch at a time: the
    outbox relay and the dead-letter relay (``consumers.dlq_relay``) share the
    connection and the drain loop, and differ only in ``run_once``."""

    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn)

    @abstractmethod
    def run_once(self) -> int:
        """Relay one batch; returns how many rows it took (0: nothing pending)."""

    def drain(self) -> int:
        """Relay batches until none is pending; returns the rows relayed."""
        total = 0
        while moved := self.run_once():
            total += moved
        return total

    def close(self) -> None:
        self._conn.close()


class OutboxRelay(Relay):
    def __init__(self, dsn: str, log: Log) -> None:
        super().__init__(dsn)
        self.log = log

    def run_once(self, limit: int = RELAY_BATCH, *, mark: bool = True) -> int:
        """Relay up to ``limit`` pending triggers; returns how many were pending.

        ``mark=False`` stops after the append, as a crash there would (tests)."""
        try:
            with self._conn.transaction():
                rows = self._conn.execute(
                    "SELECT trigger_id, customer_id, rule_id, fired_at, payload"
                    " FROM trigger_outbox WHERE published_at IS NULL"
                    " ORDER BY fired_at, trigger_id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (limit,),
                ).fetchall()
                if not rows:
                    return 0
                entries = [
                    Entry(str(tid), str(cid), bytes(payload), int(fired), str(rule))
                    for tid, cid, rule, fired, payload in rows
                ]
                self.log.append(TRIGGERS, entries)
                if not mark:
                    raise _Interrupted
                self._conn.execute(
                    "UPDATE trigger_outbox SET published_at = now() WHERE trigger_id = ANY(%s)",
                    ([e.record_id for e in entries],),
                )
        except _Interrupted:
            return len(rows)
        except psycopg.Error as exc:
            raise StorageError(f"relaying the trigger outbox failed: {exc}") from None
        return len(rows)

    def pending(self) -> int:
        with self._conn.transaction():
            row = self._conn.execute(
                "SELECT count(*) FROM trigger_outbox WHERE published_at IS NULL"
            ).fetchone()
        return 0 if row is None else int(row[0])


class _Interrupted(Exception):
    """Rolls back the outbox marking, as a crash after the append would."""
