"""The webhook store's contract, run on every adapter (memory, PostgreSQL).

Subscriptions with their target policy, cursors that move only with what was
queued, the delivery queue's states and order, retries and dead deliveries,
the attempt log, and one deliverer per subscription. ``shared_across_processes``
is the declared difference: only a store that declares it is checked from
another process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence

import pytest

from consumers.adapters.memory import MemoryWebhookStore
from consumers.ports import AttemptResult, WebhookRead, WebhookStore
from consumers.webhook_store import PostgresWebhookStore
from events.errors import EngageError, NotFound

URL = "https://hooks.example.com/engage"

Items = Sequence[tuple[str, int, str]]


def reader(
    items: Items, moves: Mapping[int, int], seen: list[dict[int, int]] | None = None
) -> WebhookRead:
    def read(positions: dict[int, int]) -> tuple[Items, Mapping[int, int]]:
        if seen is not None:
            seen.append(positions)
        return items, moves

    return read


class WebhookStoreContract:
    @pytest.fixture
    def store(self) -> Iterator[WebhookStore]:  # pragma: no cover - overridden
        raise NotImplementedError

    def second(self, store: WebhookStore) -> WebhookStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def in_another_process(self, code: str) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_subscriptions_are_added_listed_and_removed(self, store: WebhookStore) -> None:
        a = store.add(URL, "marketing", None, {0: 0})
        b = store.add(URL + "/2", None, "thanks", {0: 0})
        assert a.secret.startswith("whsec_") and a.secret != b.secret
        assert a.created_at.endswith("Z") and a.removed_at is None
        assert [s.id for s in store.subscriptions()] == [a.id, b.id]
        assert store.get(a.id) == a and store.get(10_000) is None
        assert a.matches("marketing", "any") and not a.matches("service", "any")
        store.remove(a.id)
        assert [s.id for s in store.subscriptions()] == [b.id]
        removed = store.get(a.id)
        assert removed is not None and removed.removed_at is not None
        assert a.id in [s.id for s in store.subscriptions(include_removed=True)]
        with pytest.raises(NotFound):
            store.remove(a.id)

    def test_a_private_target_needs_allow_private(self, store: WebhookStore) -> None:
        with pytest.raises(EngageError):
            store.add("http://127.0.0.1:9/hook", None, None, {0: 0})
        sub = store.add("http://127.0.0.1:9/hook", None, None, {0: 0}, allow_private=True)
        assert sub.allow_private

    def test_the_cursor_moves_with_what_was_queued(self, store: WebhookStore) -> None:
        sub = store.add(URL, None, None, {0: 5, 1: 0})
        seen: list[dict[int, int]] = []
        items = [("t-1", 10, "{}"), ("t-2", 20, "{}")]
        assert store.enqueue(sub.id, reader(items, {0: 7}, seen)) == 2
        assert store.enqueue(sub.id, reader([("t-2", 20, "{}")], {1: 1}, seen)) == 1
        assert seen == [{0: 5, 1: 0}, {0: 7, 1: 0}]
        assert store.counts() == {(sub.id, "pending"): 2}  # a re-read trigger is queued once

    def test_a_failed_read_queues_nothing_and_keeps_the_cursor(self, store: WebhookStore) -> None:
        sub = store.add(URL, None, None, {0: 3})

        def broken(positions: dict[int, int]) -> tuple[Items, Mapping[int, int]]:
            raise RuntimeError("log unavailable")

        with pytest.raises(RuntimeError):
            store.enqueue(sub.id, broken)
        seen: list[dict[int, int]] = []
        store.enqueue(sub.id, reader([], {}, seen))
        assert seen == [{0: 3}] and store.counts() == {}

    def test_due_order_retries_and_delivery(self, store: WebhookStore) -> None:
        sub = store.add(URL, None, None, {0: 0})
        items = [("t-b", 20, "b"), ("t-a", 20, "a"), ("t-c", 10, "c")]
        store.enqueue(sub.id, reader(items, {0: 3}))
        due = store.due(sub.id, 10)
        assert [q.trigger_id for q in due] == ["t-c", "t-a", "t-b"]
        assert [q.body for q in due] == ["c", "a", "b"] and {q.attempts for q in due} == {0}
        assert [q.trigger_id for q in store.due(sub.id, 2)] == ["t-c", "t-a"]
        assert store.next_due_in(sub.id) == 0.0
        first, second, third = due
        store.record(first, AttemptResult("delivered", 200, None, 5.0, None))
        store.record(second, AttemptResult("retry", 500, "HTTP 500", 7.0, 3600.0))
        assert [q.trigger_id for q in store.due(sub.id, 10)] == ["t-b"]
        store.record(third, AttemptResult("retry", None, "timeout", 9.0, 3600.0))
        assert store.due(sub.id, 10) == []
        wait = store.next_due_in(sub.id)
        assert wait is not None and 3000 < wait <= 3600
        assert store.counts() == {(sub.id, "delivered"): 1, (sub.id, "pending"): 2}
        other = store.add(URL + "/other", None, None, {0: 0})
        assert store.next_due_in(other.id) is None and store.due(other.id, 10) == []

    def test_dead_deliveries_are_listed_and_retried(self, store: WebhookStore) -> None:
        sub = store.add(URL, None, None, {0: 0})
        store.enqueue(sub.id, reader([("t-1", 1, "x"), ("t-2", 2, "y")], {0: 2}))
        item = store.due(sub.id, 1)[0]
        store.record(item, AttemptResult("dead", 410, "HTTP 410", 3.0, None))
        assert store.dead() == [(sub.id, "t-1", 1, "HTTP 410")]
        assert store.dead(sub.id + 1) == []
        assert store.retry_dead(sub.id) == 1
        assert store.dead() == []
        again = store.due(sub.id, 10)
        # the retried one is due from the retry on, after the one still waiting
        assert [(q.trigger_id, q.attempts) for q in again] == [("t-2", 0), ("t-1", 0)]

    def test_the_attempt_log_keeps_the_newest_oldest_first(self, store: WebhookStore) -> None:
        a = store.add(URL, None, None, {0: 0})
        b = store.add(URL + "/b", None, None, {0: 0})
        store.enqueue(a.id, reader([("t-1", 1, "x")], {0: 1}))
        store.enqueue(b.id, reader([("t-9", 1, "x")], {0: 1}))
        for attempt in range(3):
            item = store.due(a.id, 1)[0]
            assert item.attempts == attempt
            store.record(item, AttemptResult("retry", 503, f"e{attempt}", 1.5, 0.0))
        store.record(store.due(b.id, 1)[0], AttemptResult("delivered", 200, None, 2.0))
        log = store.attempts(a.id, limit=2)
        assert [(x.attempt, x.error, x.status_code) for x in log] == [
            (2, "e1", 503),
            (3, "e2", 503),
        ]
        assert log[0].id < log[1].id and log[0].at.endswith("Z")
        assert [x.trigger_id for x in store.attempts()] == ["t-1", "t-1", "t-1", "t-9"]

    def test_one_deliverer_per_subscription(self, store: WebhookStore) -> None:
        sub = store.add(URL, None, None, {0: 0})
        other = self.second(store)
        try:
            assert store.try_lock(sub.id)
            assert not other.try_lock(sub.id)
            assert other.try_lock(sub.id + 1)
            store.unlock(sub.id)
            assert other.try_lock(sub.id)
            assert not store.try_lock(sub.id)
            other.unlock(sub.id)
            assert store.try_lock(sub.id)
        finally:
            other.close()

    def test_another_process_sees_the_store_where_declared(self, store: WebhookStore) -> None:
        if not store.shared_across_processes:
            pytest.skip("declared: this store lives in one process")
        sub = store.add(URL, None, None, {0: 0})
        assert store.try_lock(sub.id)
        answer = self.in_another_process(
            f"print([s.url for s in store.subscriptions()], store.try_lock({sub.id}))"
        )
        assert answer.strip() == f"['{URL}'] False"


class TestMemoryWebhookStore(WebhookStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[WebhookStore]:
        yield MemoryWebhookStore()

    def second(self, store: WebhookStore) -> WebhookStore:
        assert isinstance(store, MemoryWebhookStore)
        return store.another_handle()


class TestPostgresWebhookStore(WebhookStoreContract):
    @pytest.fixture
    def store(self, database: str) -> Iterator[WebhookStore]:
        self._dsn = database
        opened = PostgresWebhookStore(database)
        yield opened
        opened.close()

    def second(self, store: WebhookStore) -> WebhookStore:
        return PostgresWebhookStore(self._dsn)

    def in_another_process(self, code: str) -> str:
        prelude = (
            "from consumers.webhook_store import PostgresWebhookStore\n"
            f"store = PostgresWebhookStore({self._dsn!r})\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
