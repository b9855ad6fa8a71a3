"""The ``CustomerHistory`` contract (one customer's touchpoints, the fired
triggers), run on every log adapter that serves it: memory, PostgreSQL, Kafka.

Kafka cannot see an event time before decoding, so it declares
``history_filters_by_time = False`` and the suite expects every record of the
customer from it; the callers filter after decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from events.adapters.memory import MemoryLog
from events.adapters.postgres import PostgresLog
from events.codec import TriggerCodec
from events.log import TOUCHPOINTS, TRIGGERS, Entry, Log, LogRecord
from events.model import TriggerEvent
from events.ports import CustomerHistory, TriggerQuery


class HistoryLog(Log, CustomerHistory, Protocol):
    """A log that also answers per-customer reads."""


def _touch(i: int, customer: str, at: int) -> Entry:
    return Entry(f"ev-{i}", customer, f"payload-{i}".encode(), at, "web_visit")


def _trigger(tid: str, customer: str, rule: str, fired_at: int) -> Entry:
    event = TriggerEvent(tid, rule, 1, "marketing", customer, fired_at, ("ev-1",), {})
    return Entry(tid, customer, TriggerCodec().encode(event), fired_at, rule)


class HistoryContract:
    @pytest.fixture
    def log(self) -> Iterator[HistoryLog]:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_a_customers_touchpoints_in_log_order(self, log: HistoryLog) -> None:
        log.append(
            TOUCHPOINTS,
            [_touch(1, "c-1", 300), _touch(2, "c-2", 100), _touch(3, "c-1", 100)],
        )
        log.append(TOUCHPOINTS, [_touch(4, "c-1", 200)])
        history = log.customer_history("c-1")
        assert [r.payload for r in history] == [b"payload-1", b"payload-3", b"payload-4"]
        assert all(r.key == "c-1" for r in history)
        assert log.customer_history("nobody") == []

    def test_several_customers_at_once_each_in_log_order(self, log: HistoryLog) -> None:
        log.append(
            TOUCHPOINTS,
            [_touch(1, "c-1", 300), _touch(2, "c-2", 100), _touch(3, "c-1", 100)],
        )
        log.append(TOUCHPOINTS, [_touch(4, "c-3", 200), _touch(5, "c-2", 50)])
        found = log.customer_histories(["c-1", "c-2", "nobody"])
        assert {c: [r.payload for r in rs] for c, rs in found.items()} == {
            "c-1": [b"payload-1", b"payload-3"],
            "c-2": [b"payload-2", b"payload-5"],
        }
        assert found["c-1"] == log.customer_history("c-1")
        assert log.customer_histories([]) == {}

    def test_until_is_applied_where_the_adapter_can(self, log: HistoryLog) -> None:
        log.append(TOUCHPOINTS, [_touch(1, "c-1", 300), _touch(2, "c-1", 100)])
        upto = [r.payload for r in log.customer_history("c-1", until=200)]
        if log.history_filters_by_time:
            assert upto == [b"payload-2"]
        else:
            assert upto == [b"payload-1", b"payload-2"]

    def test_triggers_by_customer_rule_and_time_in_fired_order(self, log: HistoryLog) -> None:
        codec = TriggerCodec()
        log.append(
            TRIGGERS,
            [
                _trigger("t-b", "c-1", "thanks", 50),
                _trigger("t-a", "c-1", "thanks", 50),
                _trigger("t-c", "c-2", "churn", 10),
                _trigger("t-d", "c-1", "churn", 70),
            ],
        )

        def ids(records: list[LogRecord]) -> list[str]:
            return [codec.decode(r.payload).trigger_id for r in records]

        assert ids(log.find_triggers()) == ["t-c", "t-a", "t-b", "t-d"]
        assert ids(log.find_triggers(TriggerQuery(customer_id="c-1"))) == ["t-a", "t-b", "t-d"]
        assert ids(log.find_triggers(TriggerQuery(rule_id="churn"))) == ["t-c", "t-d"]
        assert ids(log.find_triggers(TriggerQuery(since=60))) == ["t-d"]
        assert ids(log.find_triggers(TriggerQuery(customer_id="c-1", limit=2))) == ["t-a", "t-b"]
        assert log.find_triggers(TriggerQuery(customer_id="nobody")) == []


class TestMemoryHistory(HistoryContract):
    @pytest.fixture
    def log(self) -> Iterator[HistoryLog]:
        yield MemoryLog(4)


class TestPostgresHistory(HistoryContract):
    @pytest.fixture
    def log(self, database: str) -> Iterator[HistoryLog]:
        from tests.conftest import TEST_PARTITIONS

        opened = PostgresLog(database, TEST_PARTITIONS)
        yield opened
        opened.close()


class TestKafkaHistory(HistoryContract):
    @pytest.fixture
    def log(self, kafka_bootstrap: str, kafka_prefix: str) -> Iterator[HistoryLog]:
        from events.adapters.kafka import KafkaLog
        from tests.conftest import TEST_PARTITIONS

        opened = KafkaLog(kafka_bootstrap, TEST_PARTITIONS, prefix=kafka_prefix)
        yield opened
        opened.close()
