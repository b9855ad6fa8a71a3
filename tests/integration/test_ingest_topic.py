"""JSON on Kafka: an upstream topic with native, Segment and CloudEvents records
and poison, validated into the touchpoints log on the real Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from consumers.ingest_topic import IngestTopicPump
from engage.config import Settings
from engage.runtime import Engine
from events.adapters.kafka import KafkaLog
from events.codec import TouchpointCodec
from events.log import AppendResult, Entry
from events.timefmt import parse_iso
from tests.http_support import wait_for
from tests.kafka_workers import WorkerProcess
from tests.privacy_scan import scan_tables, scan_topics

T = "2026-03-01T10:00:00Z"

RECORDS: list[bytes] = [
    orjson.dumps(
        {
            "event_id": "n-1",
            "customer_id": "ada",
            "type": "purchase",
            "occurred_at": T,
            "properties": {"order_id": "o-1", "amount": 30},
        }
    ),
    b"\xff\xfe not even text",  # poison: not UTF-8
    orjson.dumps(
        {
            "messageId": "s-1",
            "userId": "ada",
            "type": "track",
            "event": "Product Viewed",
            "timestamp": T,
            "properties": {"sku": "sku-secret-7731"},
        }
    ),
    b'{"event_id": "n-2", "customer_id": "ada"',  # poison: cut-off JSON
    orjson.dumps(  # no type
        {"event_id": "n-3", "customer_id": "ada", "occurred_at": T, "note": "dlq-secret-5521"}
    ),
    orjson.dumps(
        {
            "specversion": "1.0",
            "id": "c-1",
            "source": "/crm",
            "type": "com.crm.survey_response",
            "subject": "ada",
            "time": T,
            "data": {"survey": "nps", "score": 9},
        }
    ),
]
VALID = 3
SECRETS = ("sku-secret-7731", "dlq-secret-5521")
"""Personal text in the records: an unknown property and a rejected record's raw text."""


@pytest.fixture
def upstream(kafka_settings: Settings) -> Iterator[str]:
    """An upstream's JSON topic (two partitions), every record on partition 0
    so the poison sits between valid records of one partition."""
    assert kafka_settings.kafka_bootstrap
    topic = f"{kafka_settings.kafka_topic_prefix}.upstream-json"
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
    for value in RECORDS:
        producer.send(topic, value=value, partition=0)
    producer.flush()
    producer.close()
    yield topic


class CrashAfterAppend:
    """The touchpoints log, but the process "dies" right after an append is
    acknowledged and before the batch's transaction commits."""

    def __init__(self, inner: KafkaLog) -> None:
        self.inner = inner

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        self.inner.append(stream, entries)
        raise RuntimeError("killed after the append")


def _pump(settings: Settings, engine: Engine, topic: str, log: Any = None) -> IngestTopicPump:
    assert settings.kafka_bootstrap and engine.kafka is not None
    reader = KafkaLog(settings.kafka_bootstrap, engine.partitions, prefix=engine.kafka.prefix)
    return IngestTopicPump(
        engine.dsn, topic, 2, reader, log or reader, TouchpointCodec(), lambda: None, engine.keys
    )


def test_records_of_every_shape_go_in_and_poison_goes_to_the_dlq_once(
    kafka_settings: Settings, upstream: str
) -> None:
    with Engine.open(kafka_settings) as engine:
        assert engine.kafka is not None
        crashing = _pump(kafka_settings, engine, upstream, CrashAfterAppend(engine.kafka))
        with pytest.raises(RuntimeError, match="killed after the append"):
            crashing.pump_once()
        crashing.close()
        assert engine.dead_letters.count() == 0  # rolled back with the offsets
        pump = _pump(kafka_settings, engine, upstream)
        report = pump.pump_once()
        assert (report.accepted, report.rejected) == (VALID, 3)
        assert pump.pump_once().lines == 0  # the offsets moved past everything
        assert pump.positions() == {0: len(RECORDS), 1: 0}
        pump.close()
        letters = sorted(engine.dead_letters.list(), key=lambda d: d.line_no or 0)
        assert [(d.source, d.line_no, d.field) for d in letters] == [
            (f"kafka:{upstream}/0", 1, "(record)"),
            (f"kafka:{upstream}/0", 3, "(record)"),
            (f"kafka:{upstream}/0", 4, "type"),
        ]
        assert letters[1].raw == '{"event_id": "n-2", "customer_id": "ada"'
        # the crashed batch's events are on the topic twice: applied once
        engine.processor().run(until_idle=True, now=parse_iso("2026-03-02T00:00:00Z"))
        ada = engine.store.get("ada")
        assert ada is not None
        assert ada.event_count == VALID
        assert ada.custom_counts == {"Product Viewed": 1}
        assert ada.nps_last == 9 and ada.order_count == 1
        # personal text from the topic is sealed, as through `engage publish`
        assert scan_tables(engine.dsn, SECRETS) == []
        assert scan_topics(engine.kafka, SECRETS) == []
        assert letters[2].raw is not None and "dlq-secret-5521" in letters[2].raw  # key opens it


def test_engage_worker_ingest_topic(
    kafka_settings: Settings, upstream: str, tmp_path: Path
) -> None:
    with Engine.open(kafka_settings) as engine:
        worker = WorkerProcess(
            kafka_settings,
            tmp_path / "worker.log",
            "--ingest-topic",
            upstream,
            "--session-timeout",
            "6",
            "--now",
            "2026-03-02T00:00:00Z",
        )
        try:
            wait_for(
                lambda: (p := engine.store.get("ada")) is not None and p.event_count == VALID,
                120,
                "the worker to validate and apply the upstream topic",
            )
            wait_for(lambda: engine.dead_letters.count() == 3, 30, "three dead letters")
        finally:
            worker.stop()
        assert "validating" in worker.output()
        assert engine.kafka is not None
        assert scan_tables(engine.dsn, SECRETS) == []
        assert scan_topics(engine.kafka, SECRETS) == []


def test_a_worker_killed_mid_topic_loses_and_doubles_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """kill -9 while the pump is part way through a topic: the restarted worker
    resumes from the offsets in PostgreSQL; every event counts once and every
    poison record is dead-lettered once."""
    assert kafka_settings.kafka_bootstrap
    topic = f"{kafka_settings.kafka_topic_prefix}.crash-json"
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        admin.close()
    total, poison = 3_000, 6
    producer = KafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
    for i in range(total):
        event = {
            "event_id": f"k-{i}",
            "customer_id": f"c-{i % 20}",
            "type": "web_visit",
            "occurred_at": T,
            "properties": {"url": f"https://shop.test/{i}"},
        }
        producer.send(topic, value=orjson.dumps(event), partition=i % 2)
        if i % 500 == 250:
            producer.send(topic, value=b"{poison", partition=i % 2)
    producer.flush()
    producer.close()
    args = ("--ingest-topic", topic, "--batch-size", "40", "--session-timeout", "6")
    args += ("--now", "2026-03-02T00:00:00Z")

    def ingested(engine: Engine) -> int:
        with engine.store.transaction() as tx:
            conn = tx._conn  # type: ignore[attr-defined]
            row = conn.execute(
                'SELECT coalesce(sum("offset"), 0) FROM ingest_offsets WHERE topic = %s', (topic,)
            ).fetchone()
        return int(row[0])

    with Engine.open(kafka_settings) as engine:
        first = WorkerProcess(kafka_settings, tmp_path / "first.log", *args)
        try:
            wait_for(lambda: ingested(engine) >= 600, 120, "the pump to be part way")
        finally:
            first.kill()
        assert ingested(engine) < total + poison, "killed too late to test anything"
        second = WorkerProcess(kafka_settings, tmp_path / "second.log", *args)
        try:
            wait_for(lambda: ingested(engine) == total + poison, 180, "the rest of the topic")
            wait_for(
                lambda: sum(p.event_count for p in _profiles(engine)) == total,
                120,
                "every event applied",
            )
        finally:
            second.stop()
        assert sum(p.event_count for p in _profiles(engine)) == total
        assert engine.dead_letters.count() == poison


def _profiles(engine: Engine) -> list[Any]:
    found = [engine.store.get(f"c-{i}") for i in range(20)]
    return [p for p in found if p is not None]
