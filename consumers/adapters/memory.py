"""The webhook store in memory, for tests of delivery that need no database.

It keeps the contract the PostgreSQL store keeps (``tests/contract/``): the
same queue states, ordering, retry and dead-letter rules, cursors that move
only with what was queued, one lock holder per subscription. Its state lives
in one process (``shared_across_processes = False``): handles made with
``another_handle`` share it, as connections to one database do.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from consumers.ports import Attempt, AttemptResult, QueueItem, Subscription, WebhookRead
from consumers.webhook_targets import check_target
from events.errors import NotFound


def _iso(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Queued:
    trigger_id: str
    fired_at: int
    body: str
    state: str
    attempts: int
    next_attempt_at: float
    updated_at: float
    last_error: str | None = None


@dataclass
class _State:
    """What a database would hold; shared by every handle on it."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    cursors: dict[int, dict[int, int]] = field(default_factory=dict)
    queues: dict[int, dict[str, _Queued]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    holders: dict[int, tuple[int, int]] = field(default_factory=dict)  # sub -> (handle, depth)
    next_sub: int = 1
    next_handle: int = 1


class MemoryWebhookStore:
    shared_across_processes = False

    def __init__(
        self, clock: Callable[[], float] = time.time, *, _state: _State | None = None
    ) -> None:
        """``clock``: seconds since the epoch, standing in for the database's ``now()``."""
        self._clock = clock
        self._s = _State() if _state is None else _state
        with self._s.lock:
            self._handle = self._s.next_handle
            self._s.next_handle += 1

    def another_handle(self) -> MemoryWebhookStore:
        """A second handle on the same state (another connection, in PostgreSQL terms)."""
        return MemoryWebhookStore(self._clock, _state=self._s)

    def add(
        self,
        url: str,
        kind: str | None,
        rule_id: str | None,
        start: Mapping[int, int],
        *,
        allow_private: bool = False,
    ) -> Subscription:
        check_target(url, allow_private=allow_private, must_resolve=False)
        secret = "whsec_" + secrets.token_urlsafe(32)
        with self._s.lock:
            sub = Subscription(
                self._s.next_sub,
                url,
                kind,
                rule_id,
                secret,
                _iso(self._clock()),
                None,
                allow_private,
            )
            self._s.next_sub += 1
            self._s.subscriptions[sub.id] = sub
            self._s.cursors[sub.id] = dict(start)
            self._s.queues[sub.id] = {}
        return sub

    def subscriptions(self, *, include_removed: bool = False) -> list[Subscription]:
        with self._s.lock:
            subs = sorted(self._s.subscriptions.values(), key=lambda s: s.id)
        return [s for s in subs if include_removed or s.removed_at is None]

    def get(self, sub_id: int) -> Subscription | None:
        with self._s.lock:
            return self._s.subscriptions.get(sub_id)

    def remove(self, sub_id: int) -> None:
        with self._s.lock:
            sub = self._s.subscriptions.get(sub_id)
            if sub is None or sub.removed_at is not None:
                raise NotFound(f"no active webhook subscription #{sub_id}")
            self._s.subscriptions[sub_id] = replace(sub, removed_at=_iso(self._clock()))

    def enqueue(self, sub_id: int, read: WebhookRead) -> int:
        with self._s.lock:
            positions = dict(sorted(self._s.cursors.get(sub_id, {}).items()))
            items, new_positions = read(dict(positions))
            now = self._clock()
            queue = self._s.queues.setdefault(sub_id, {})
            for trigger_id, fired_at, body in items:
                if trigger_id not in queue:
                    queue[trigger_id] = _Queued(trigger_id, fired_at, body, "pending", 0, now, now)
            self._s.cursors.setdefault(sub_id, {}).update(new_positions)
        return len(items)

    def due(self, sub_id: int, limit: int) -> list[QueueItem]:
        now = self._clock()
        with self._s.lock:
            ready = [
                q
                for q in self._s.queues.get(sub_id, {}).values()
                if q.state == "pending" and q.next_attempt_at <= now
            ]
        ready.sort(key=lambda q: (q.next_attempt_at, q.fired_at, q.trigger_id))
        return [QueueItem(sub_id, q.trigger_id, q.body, q.attempts) for q in ready[:limit]]

    def next_due_in(self, sub_id: int) -> float | None:
        with self._s.lock:
            times = [
                q.next_attempt_at
                for q in self._s.queues.get(sub_id, {}).values()
                if q.state == "pending"
            ]
        return None if not times else max(0.0, min(times) - self._clock())

    def record(self, item: QueueItem, result: AttemptResult) -> None:
        attempt = item.attempts + 1
        state = {"delivered": "delivered", "dead": "dead"}.get(result.outcome, "pending")
        now = self._clock()
        with self._s.lock:
            self._s.attempts.append(
                Attempt(
                    len(self._s.attempts) + 1,
                    item.subscription_id,
                    item.trigger_id,
                    attempt,
                    _iso(now),
                    result.status_code,
                    result.error,
                    result.duration_ms,
                    result.outcome,
                )
            )
            queued = self._s.queues.get(item.subscription_id, {}).get(item.trigger_id)
            if queued is not None:
                queued.attempts, queued.state, queued.last_error = attempt, state, result.error
                queued.updated_at = now
                queued.next_attempt_at = now + (result.retry_in or 0.0)

    def attempts(self, sub_id: int | None = None, limit: int = 50) -> list[Attempt]:
        with self._s.lock:
            found = [a for a in self._s.attempts if sub_id is None or a.subscription_id == sub_id]
        return found[-limit:] if limit > 0 else []

    def counts(self) -> dict[tuple[int, str], int]:
        out: dict[tuple[int, str], int] = {}
        with self._s.lock:
            for sub_id, queue in self._s.queues.items():
                for q in queue.values():
                    out[(sub_id, q.state)] = out.get((sub_id, q.state), 0) + 1
        return out

    def _dead(self, sub_id: int | None) -> list[tuple[int, _Queued]]:
        return [
            (s, q)
            for s, queue in self._s.queues.items()
            if sub_id is None or s == sub_id
            for q in queue.values()
            if q.state == "dead"
        ]

    def dead(self, sub_id: int | None = None, limit: int = 100) -> list[tuple[int, str, int, str]]:
        with self._s.lock:
            found = sorted(self._dead(sub_id), key=lambda pair: pair[1].updated_at)
        return [(s, q.trigger_id, q.attempts, q.last_error or "") for s, q in found[:limit]]

    def retry_dead(self, sub_id: int | None = None) -> int:
        now = self._clock()
        with self._s.lock:
            found = self._dead(sub_id)
            for _, q in found:
                q.state, q.attempts, q.next_attempt_at = "pending", 0, now
        return len(found)

    def try_lock(self, sub_id: int) -> bool:
        """Re-entrant for the handle that holds it, as a PostgreSQL session lock is."""
        with self._s.lock:
            holder = self._s.holders.get(sub_id)
            if holder is not None and holder[0] != self._handle:
                return False
            self._s.holders[sub_id] = (self._handle, 1 if holder is None else holder[1] + 1)
            return True

    def unlock(self, sub_id: int) -> None:
        with self._s.lock:
            holder = self._s.holders.get(sub_id)
            if holder is None or holder[0] != self._handle:
                return
            if holder[1] > 1:
                self._s.holders[sub_id] = (self._handle, holder[1] - 1)
            else:
                del self._s.holders[sub_id]

    def close(self) -> None:
        """Like a closed connection: the locks this handle held are released."""
        with self._s.lock:
            for sub_id, (handle, _) in list(self._s.holders.items()):
                if handle == self._handle:
                    del self._s.holders[sub_id]
