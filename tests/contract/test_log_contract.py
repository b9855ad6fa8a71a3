"""The ``Log`` port's contract, written once and run against every adapter.

Subclass ``LogContract`` with a ``log`` fixture for a new adapter (the Kafka
adapter joins here in scale-out mode).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from events.adapters.memory import MemoryLog
from events.adapters.postgres import PostgresLog
from events.log import TOUCHPOINTS, Entry, Log
from events.partitioning import partition_for


def _entry(i: int, key: str) -> Entry:
    return Entry(f"ev-{i}", key, f"payload-{i}".encode(), 1_000 + i, "web_visit")


class LogContract:
    @pytest.fixture
    def log(self) -> Iterator[Log]:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_appends_are_read_back_in_order_per_key(self, log: Log) -> None:
        keys = ["c-1", "c-2", "c-3", "c-4", "c-5"]
        entries = [_entry(i, keys[i % len(keys)]) for i in range(50)]
        result = log.append(TOUCHPOINTS, entries)
        assert result.accepted == 50 and result.duplicates == []
        records = log.read(TOUCHPOINTS, dict.fromkeys(range(log.partitions), 0), 1000)
        assert len(records) == 50
        for key in keys:
            mine = [r.payload for r in records if r.key == key]
            assert mine == [e.payload for e in entries if e.key == key]
            assert {r.partition for r in records if r.key == key} == {
                partition_for(key, log.partitions)
            }

    def test_offsets_are_consecutive_from_zero(self, log: Log) -> None:
        log.append(TOUCHPOINTS, [_entry(i, "c-1") for i in range(5)])
        log.append(TOUCHPOINTS, [_entry(i, "c-1") for i in range(5, 8)])
        p = partition_for("c-1", log.partitions)
        records = log.read(TOUCHPOINTS, {p: 0}, 100)
        assert [r.offset for r in records] == list(range(8))
        assert log.heads(TOUCHPOINTS)[p] == 8

    def test_read_starts_at_position_and_honours_limit(self, log: Log) -> None:
        log.append(TOUCHPOINTS, [_entry(i, "c-1") for i in range(10)])
        p = partition_for("c-1", log.partitions)
        records = log.read(TOUCHPOINTS, {p: 4}, 3)
        assert [r.offset for r in records] == [4, 5, 6]
        assert log.read(TOUCHPOINTS, {p: 10}, 3) == []

    def test_repeated_ids_are_duplicates_stored_once(self, log: Log) -> None:
        """Within one append every log drops a repeat; across appends only a log
        declaring ``refuses_repeated_ids`` can (Kafka stores it, and the
        processor drops it: tests/integration/test_kafka_mode.py)."""
        first = log.append(TOUCHPOINTS, [_entry(1, "c-1"), _entry(2, "c-1"), _entry(1, "c-1")])
        assert first.accepted == 2 and first.duplicates == ["ev-1"]
        second = log.append(TOUCHPOINTS, [_entry(2, "c-1"), _entry(3, "c-2")])
        if log.refuses_repeated_ids:
            assert second.accepted == 1 and second.duplicates == ["ev-2"]
            assert sum(log.heads(TOUCHPOINTS).values()) == 3
        else:
            assert second.accepted == 2 and second.duplicates == []
            assert sum(log.heads(TOUCHPOINTS).values()) == 4

    def test_wait_wakes_on_append(self, log: Log) -> None:
        log.wait(0.01)  # start listening
        appender = threading.Thread(
            target=lambda: (time.sleep(0.2), log_for_thread.append(TOUCHPOINTS, [_entry(9, "c")]))
        )
        log_for_thread = self.second_log(log)
        started = time.monotonic()
        appender.start()
        woke = log.wait(10.0)
        appender.join()
        assert woke
        assert time.monotonic() - started < 5.0

    def second_log(self, log: Log) -> Log:  # pragma: no cover - overridden
        raise NotImplementedError


class TestMemoryLog(LogContract):
    @pytest.fixture
    def log(self) -> Iterator[Log]:
        yield MemoryLog(4)

    def second_log(self, log: Log) -> Log:
        return log  # memory is shared by being the same object


class TestPostgresLog(LogContract):
    @pytest.fixture
    def log(self, database: str) -> Iterator[Log]:
        from tests.conftest import TEST_PARTITIONS

        opened = PostgresLog(database, TEST_PARTITIONS)
        self._dsn = database
        yield opened
        opened.close()

    def second_log(self, log: Log) -> Log:
        return PostgresLog(self._dsn, log.partitions)


class TestKafkaLog(LogContract):
    """The same contract on a real Kafka-protocol broker (Tansu, or
    ``ENGAGE_TEST_KAFKA``), each test on topics of its own."""

    @pytest.fixture
    def log(self, kafka_bootstrap: str, kafka_prefix: str) -> Iterator[Log]:
        from events.adapters.kafka import KafkaLog
        from tests.conftest import TEST_PARTITIONS

        self._opened: list[KafkaLog] = []
        self._args = (kafka_bootstrap, kafka_prefix)
        opened = KafkaLog(kafka_bootstrap, TEST_PARTITIONS, prefix=kafka_prefix)
        yield opened
        opened.close()
        for other in self._opened:
            other.close()

    def second_log(self, log: Log) -> Log:
        from events.adapters.kafka import KafkaLog

        other = KafkaLog(self._args[0], log.partitions, prefix=self._args[1])
        self._opened.append(other)
        return other


class TestKafkaLogOnApacheKafka(TestKafkaLog):
    """The same again on Apache Kafka (testcontainers), where Docker exists."""

    @pytest.fixture
    def kafka_bootstrap(self, apache_kafka_bootstrap: str) -> str:
        return apache_kafka_bootstrap
