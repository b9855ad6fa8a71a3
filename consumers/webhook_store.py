"""Webhook state in PostgreSQL (the ``consumers.ports.WebhookStore`` port):
subscriptions, per-subscription cursors over the triggers stream, the
delivery queue with retry state, and the attempt log.

Enqueueing a subscription's new triggers and advancing its cursor happen in
one transaction (the cursor rows are locked), so two deliverers never skip or
double-queue a trigger; the queue's key (subscription, trigger_id) makes a
re-read harmless.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import psycopg

from consumers.ports import Attempt, AttemptResult, QueueItem, Subscription
from consumers.webhook_targets import check_target
from events.adapters.connection import connect
from events.errors import NotFound, StorageError

_ISO: Final = '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\''


class PostgresWebhookStore:
    """The ``consumers.ports.WebhookStore`` port on PostgreSQL."""

    shared_across_processes = True
    """Advisory locks and rows are seen by every process on the database."""

    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn, autocommit=True)

    def _fail(self, what: str, exc: psycopg.Error) -> StorageError:
        return StorageError(f"{what} failed: {str(exc).strip().splitlines()[0]}")

    def add(
        self,
        url: str,
        kind: str | None,
        rule_id: str | None,
        start: Mapping[int, int],
        *,
        allow_private: bool = False,
    ) -> Subscription:
        """Subscribe ``url``; its cursor starts at ``start`` (usually the stream's
        heads). The target policy (``consumers.webhook_targets``) applies."""
        check_target(url, allow_private=allow_private, must_resolve=False)
        secret = "whsec_" + secrets.token_urlsafe(32)
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    "INSERT INTO webhook_subscriptions (url, kind, rule_id, secret, allow_private)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    f" RETURNING id, to_char(created_at AT TIME ZONE 'UTC', {_ISO})",
                    (url, kind, rule_id, secret, allow_private),
                ).fetchone()
                assert row is not None
                sub_id = int(row[0])
                parts = sorted(start)
                self._conn.execute(
                    'INSERT INTO webhook_cursors (subscription_id, partition, "offset")'
                    " SELECT %s, p, o FROM unnest(%s::int[], %s::bigint[]) AS v(p, o)",
                    (sub_id, parts, [start[p] for p in parts]),
                )
        except psycopg.Error as exc:
            raise self._fail("adding the webhook", exc) from None
        return Subscription(sub_id, url, kind, rule_id, secret, str(row[1]), None, allow_private)

    def subscriptions(self, *, include_removed: bool = False) -> list[Subscription]:
        rows = self._conn.execute(
            "SELECT id, url, kind, rule_id, secret,"
            f" to_char(created_at AT TIME ZONE 'UTC', {_ISO}),"
            f" to_char(removed_at AT TIME ZONE 'UTC', {_ISO}), allow_private"
            " FROM webhook_subscriptions WHERE %s OR removed_at IS NULL ORDER BY id",
            (include_removed,),
        ).fetchall()
        return [Subscription(int(r[0]), *r[1:]) for r in rows]

    def get(self, sub_id: int) -> Subscription | None:
        found = [s for s in self.subscriptions(include_removed=True) if s.id == sub_id]
        return found[0] if found else None

    def remove(self, sub_id: int) -> None:
        cur = self._conn.execute(
            "UPDATE webhook_subscriptions SET removed_at = now()"
            " WHERE id = %s AND removed_at IS NULL",
            (sub_id,),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no active webhook subscription #{sub_id}")

    def enqueue(
        self,
        sub_id: int,
        read: Callable[[dict[int, int]], tuple[Sequence[tuple[str, int, str]], Mapping[int, int]]],
    ) -> int:
        """Lock the cursor, ``read(positions)`` -> (items, new_positions), queue the
        items and advance the cursor, all in one transaction; returns items queued.

        ``items`` are (trigger_id, fired_at, body) already filtered for this
        subscription."""
        try:
            with self._conn.transaction():
                rows = self._conn.execute(
                    'SELECT partition, "offset" FROM webhook_cursors'
                    " WHERE subscription_id = %s ORDER BY partition FOR UPDATE",
                    (sub_id,),
                ).fetchall()
                positions = {int(p): int(o) for p, o in rows}
                items, new_positions = read(positions)
                if items:
                    self._conn.cursor().executemany(
                        "INSERT INTO webhook_queue (subscription_id, trigger_id, fired_at, body)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(sub_id, tid, fired, body) for tid, fired, body in items],
                    )
                changed = {p: o for p, o in new_positions.items() if positions.get(p) != o}
                if changed:
                    parts = sorted(changed)
                    self._conn.execute(
                        'INSERT INTO webhook_cursors (subscription_id, partition, "offset")'
                        " SELECT %s, p, o FROM unnest(%s::int[], %s::bigint[]) AS v(p, o)"
                        ' ON CONFLICT (subscription_id, partition) DO UPDATE SET "offset" ='
                        ' EXCLUDED."offset"',
                        (sub_id, parts, [changed[p] for p in parts]),
                    )
        except psycopg.Error as exc:
            raise self._fail("queueing webhook deliveries", exc) from None
        return len(items)

    def due(self, sub_id: int, limit: int) -> list[QueueItem]:
        rows = self._conn.execute(
            "SELECT subscription_id, trigger_id, body, attempts FROM webhook_queue"
            " WHERE subscription_id = %s AND state = 'pending' AND next_attempt_at <= now()"
            " ORDER BY next_attempt_at, fired_at, trigger_id LIMIT %s",
            (sub_id, limit),
        ).fetchall()
        return [QueueItem(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def next_due_in(self, sub_id: int) -> float | None:
        """Seconds until this subscription's next pending delivery, or None."""
        row = self._conn.execute(
            "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM webhook_queue"
            " WHERE subscription_id = %s AND state = 'pending'",
            (sub_id,),
        ).fetchone()
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    def record(self, item: QueueItem, result: AttemptResult) -> None:
        """Log one attempt and move the item on: delivered, retry later, or dead."""
        attempt = item.attempts + 1
        state = {"delivered": "delivered", "dead": "dead"}.get(result.outcome, "pending")
        try:
            with self._conn.transaction():
                self._conn.execute(
                    "INSERT INTO webhook_attempts (subscription_id, trigger_id, attempt,"
                    " status_code, error, duration_ms, outcome) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (
                        item.subscription_id,
                        item.trigger_id,
                        attempt,
                        result.status_code,
                        result.error,
                        result.duration_ms,
                        result.outcome,
                    ),
                )
                self._conn.execute(
                    "UPDATE webhook_queue SET attempts = %s, state = %s, last_error = %s,"
                    " updated_at = now(),"
                    " next_attempt_at = now() + make_interval(secs => %s)"
                    " WHERE subscription_id = %s AND trigger_id = %s",
                    (
                        attempt,
                        state,
                        result.error,
                        result.retry_in or 0.0,
                        item.subscription_id,
                        item.trigger_id,
                    ),
                )
        except psycopg.Error as exc:
            raise self._fail("recording a webhook attempt", exc) from None

    def attempts(self, sub_id: int | None = None, limit: int = 50) -> list[Attempt]:
        rows = self._conn.execute(
            "SELECT id, subscription_id, trigger_id, attempt,"
            f" to_char(at AT TIME ZONE 'UTC', {_ISO}), status_code, error, duration_ms, outcome"
            " FROM webhook_attempts WHERE %s::bigint IS NULL OR subscription_id = %s"
            " ORDER BY id DESC LIMIT %s",
            (sub_id, sub_id, limit),
        ).fetchall()
        return [Attempt(*r) for r in reversed(rows)]

    def counts(self) -> dict[tuple[int, str], int]:
        """(subscription_id, state) -> number of queued triggers."""
        rows = self._conn.execute(
            "SELECT subscription_id, state, count(*) FROM webhook_queue GROUP BY 1, 2"
        ).fetchall()
        return {(int(s), str(st)): int(n) for s, st, n in rows}

    def dead(self, sub_id: int | None = None, limit: int = 100) -> list[tuple[int, str, int, str]]:
        """(subscription_id, trigger_id, attempts, last_error) of given-up deliveries."""
        rows = self._conn.execute(
            "SELECT subscription_id, trigger_id, attempts, coalesce(last_error, '')"
            " FROM webhook_queue WHERE state = 'dead'"
            " AND (%s::bigint IS NULL OR subscription_id = %s) ORDER BY updated_at LIMIT %s",
            (sub_id, sub_id, limit),
        ).fetchall()
        return [(int(a), str(b), int(c), str(d)) for a, b, c, d in rows]

    def retry_dead(self, sub_id: int | None = None) -> int:
        cur = self._conn.execute(
            "UPDATE webhook_queue SET state = 'pending', attempts = 0, next_attempt_at = now()"
            " WHERE state = 'dead' AND (%s::bigint IS NULL OR subscription_id = %s)",
            (sub_id, sub_id),
        )
        return cur.rowcount

    def try_lock(self, sub_id: int) -> bool:
        """A session lock: one deliverer per subscription at a time, across processes."""
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(4242100, %s::int)", (sub_id,)
        ).fetchone()
        return bool(row and row[0])

    def unlock(self, sub_id: int) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(4242100, %s::int)", (sub_id,))

    def close(self) -> None:
        self._conn.close()


WebhookStore = PostgresWebhookStore
"""The name callers construct it by (``WebhookStore(dsn)``); the port of the
same name, ``consumers.ports.WebhookStore``, is what functions take."""

__all__ = ["Attempt", "PostgresWebhookStore", "QueueItem", "Subscription", "WebhookStore"]
