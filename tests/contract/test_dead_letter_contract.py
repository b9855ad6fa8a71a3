"""The dead-letter store's contract, run on every adapter (memory, PostgreSQL).

What a user relies on: every rejected input is kept with its raw text (capped,
with the whole input's size and hash), read back oldest first in pages, and
purged by age.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from events.adapters.memory import MemoryDeadLetters
from events.adapters.postgres import PostgresDeadLetters
from events.dead_letters import RAW_KEEP, DeadLetterRow, DeadLetterStore


def _row(i: int, raw: str | None = None) -> DeadLetterRow:
    return ("ingest", "events.jsonl", i, f"ev-{i}", "amount", f"reason {i}", raw or f"line {i}")


class DeadLetterContract:
    @pytest.fixture
    def store(self) -> Iterator[DeadLetterStore]:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_rows_are_kept_with_their_raw_text_oldest_first(self, store: DeadLetterStore) -> None:
        store.add([_row(1), _row(2)])
        store.add([_row(3)])
        letters = store.list()
        assert [d.event_id for d in letters] == ["ev-1", "ev-2", "ev-3"]
        first = letters[0]
        assert (first.stage, first.source, first.line_no, first.field, first.reason, first.raw) == (
            "ingest",
            "events.jsonl",
            1,
            "amount",
            "reason 1",
            "line 1",
        )
        assert first.raw_bytes == len(b"line 1") and not first.truncated
        assert first.raw_sha256 == hashlib.sha256(b"line 1").hexdigest()
        assert first.received_at.endswith("Z") and first.received_at[:2] in ("19", "20")
        assert letters[0].id < letters[1].id < letters[2].id
        assert store.count() == 3

    def test_adding_nothing_adds_nothing(self, store: DeadLetterStore) -> None:
        store.add([])
        assert store.count() == 0 and store.list() == []

    def test_pages_are_the_newest_below_an_id(self, store: DeadLetterStore) -> None:
        store.add([_row(i) for i in range(1, 8)])
        page = store.list(limit=3)
        assert [d.event_id for d in page] == ["ev-5", "ev-6", "ev-7"]
        older = store.list(limit=3, before=page[0].id)
        assert [d.event_id for d in older] == ["ev-2", "ev-3", "ev-4"]
        assert [d.event_id for d in store.list(limit=3, before=older[0].id)] == ["ev-1"]

    def test_a_huge_raw_text_is_capped_with_its_size_and_hash(self, store: DeadLetterStore) -> None:
        raw = "é" * (RAW_KEEP + 10)
        store.add([_row(1, raw)])
        (letter,) = store.list()
        assert letter.raw == raw[:RAW_KEEP]
        assert letter.raw_bytes == len(raw.encode())
        assert letter.raw_sha256 == hashlib.sha256(raw.encode()).hexdigest()
        assert letter.truncated
        assert letter.as_json()["truncated"] is True

    def test_purge_removes_what_was_received_before_an_instant(
        self, store: DeadLetterStore
    ) -> None:
        store.add([_row(1), _row(2)])
        now = time.time_ns() // 1_000
        assert store.purge(now - 3_600_000_000) == 0
        assert store.count() == 2
        assert store.purge(now + 3_600_000_000) == 2
        assert store.count() == 0 and store.list() == []


class TestMemoryDeadLetters(DeadLetterContract):
    @pytest.fixture
    def store(self) -> Iterator[DeadLetterStore]:
        yield MemoryDeadLetters()


class TestPostgresDeadLetters(DeadLetterContract):
    @pytest.fixture
    def store(self, database: str) -> Iterator[DeadLetterStore]:
        from events.adapters.connection import connect

        opened = PostgresDeadLetters(connect(database))
        yield opened
        opened.close()
