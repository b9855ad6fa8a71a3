"""The ``Log`` port on Kafka (kafka-python), for scale-out.

Each stream is a topic (``engage.touchpoints``, ``engage.triggers``; rejected
inputs also go to ``engage.dlq``), created with the configured partition count
when missing. Records carry the same Avro single-object payload as the
PostgreSQL log, keyed by ``customer_id`` and placed with the same murmur2
partitioner (``events.partitioning``), so a customer has the same partition
number in both logs.

Two differences from the PostgreSQL log, both handled downstream:

- Kafka cannot refuse an ``event_id`` that is already on the topic, so
  ``append`` only drops repeats within one call; the processor drops the rest
  (``Pipeline(drop_repeated_ids=True)``, a seen-ids table written in the batch
  transaction).
- Reads use *assigned* partitions, never a consumer group: the offsets that
  matter live in PostgreSQL beside the state they produced, and kafka-python's
  group join does not complete on the Tansu broker used in the tests.

The producer is idempotent with ``acks=all``, so a retried send is not
written twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from events.codec import CodecError, TriggerCodec
from events.dead_letters import DeadLetterRow
from events.errors import ConfigError, StorageError
from events.log import TOUCHPOINTS, TRIGGERS, AppendResult, Entry, LogRecord, read_stream
from events.partitioning import partition_for
from events.ports import ALL_TRIGGERS, TriggerQuery

DEFAULT_PREFIX: Final = "engage"
STREAMS: Final = (TOUCHPOINTS, TRIGGERS)
DLQ: Final = "dlq"

logging.getLogger("kafka").setLevel(logging.CRITICAL)


def topic_for(stream: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``engage.touchpoints``, ``engage.triggers``, ``engage.dlq``; the prefix
    (``ENGAGE_KAFKA_TOPIC_PREFIX``) lets several engines (or tests) share a broker."""
    if stream not in (*STREAMS, DLQ):
        raise StorageError(f"unknown log stream {stream!r}")
    return f"{prefix}.{stream}"


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def ensure_topics(
    bootstrap: str, partitions: int, prefix: str = DEFAULT_PREFIX, replication: int = 1
) -> int:
    """Create the engine's topics when missing; return the touchpoints topic's
    partition count (the one that places customers)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="engage-admin")
    except KafkaError as exc:
        raise StorageError(f"cannot reach Kafka at {bootstrap}: {_reason(exc)}") from None
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication)
            for name in (topic_for(s, prefix) for s in (*STREAMS, DLQ))
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
                admin.create_topics(missing)
        described = _describe(admin, topic_for(TOUCHPOINTS, prefix))
        return described if described else partitions
    except KafkaError as exc:
        raise StorageError(f"creating the Kafka topics failed: {_reason(exc)}") from None
    finally:
        admin.close()


def _describe(admin: KafkaAdminClient, topic: str) -> int:
    for _ in range(50):  # metadata can lag a fresh create for a moment
        for item in admin.describe_topics([topic]):
            name = item.get("name", item.get("topic"))  # the key differs across versions
            if name == topic and item.get("partitions"):
                return len(item["partitions"])
        time.sleep(0.1)
    return 0


class KafkaLog:
    refuses_repeated_ids = False
    """A topic cannot be searched for an id: repeats across appends are stored."""
    history_filters_by_time = False
    """``customer_history`` returns every record of the customer: a Kafka record
    carries no event time outside its payload, so callers apply ``until``
    after decoding (``projections.queries.touchpoints`` does)."""

    def __init__(
        self,
        bootstrap: str,
        partitions: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        client_id: str = "engage",
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self.prefix = prefix
        self._partitions = ensure_topics(bootstrap, partitions, prefix)
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        self._seen_ends: dict[TopicPartition, int] | None = None

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    @property
    def partitions(self) -> int:
        return self._partitions

    # -- writing ---------------------------------------------------------------

    def _producer_(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                    batch_size=256 * 1024,
                    max_request_size=8 * 1024 * 1024,
                )
            except KafkaError as exc:
                raise StorageError(
                    f"cannot reach Kafka at {self._bootstrap}: {_reason(exc)}"
                ) from None
        return self._producer

    def _send(self, topic: str, items: Sequence[tuple[int, bytes, bytes, list[Any]]]) -> None:
        producer = self._producer_()
        try:
            futures = [
                producer.send(topic, key=key, value=value, partition=p, headers=headers)
                for p, key, value, headers in items
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        except KafkaError as exc:
            raise StorageError(f"appending to {topic} failed: {_reason(exc)}") from None

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        """Send and wait for every acknowledgement; only repeats within this
        call are reported as duplicates (see the module docstring)."""
        topic = topic_for(stream, self.prefix)
        seen: set[str] = set()
        duplicates: list[str] = []
        items: list[tuple[int, bytes, bytes, list[Any]]] = []
        for entry in entries:
            if entry.record_id in seen:
                duplicates.append(entry.record_id)
                continue
            seen.add(entry.record_id)
            items.append(
                (
                    partition_for(entry.key, self._partitions),
                    entry.key.encode(),
                    entry.payload,
                    [("id", entry.record_id.encode())],
                )
            )
        if items:
            self._send(topic, items)
        return AppendResult(len(items), duplicates)

    def dead_letter(self, rows: Sequence[DeadLetterRow]) -> None:
        """Copy rejected inputs to ``engage.dlq`` (the PostgreSQL dead-letter
        store keeps them too): JSON values, keyed by the event_id when known."""
        import orjson

        fields = ("stage", "source", "line", "event_id", "field", "reason", "raw")
        items: list[tuple[int, bytes, bytes, list[Any]]] = []
        for i, row in enumerate(rows):
            value = orjson.dumps(dict(zip(fields, row, strict=True)))
            key = (row[3] or row[1] or "").encode()
            items.append((i % self._partitions, key, value, []))
        if items:
            self._send(topic_for(DLQ, self.prefix), items)

    # -- reading ---------------------------------------------------------------

    def _consumer_(self) -> KafkaConsumer:
        if self._consumer is None:
            try:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=50_000,
                    max_partition_fetch_bytes=4 * 1024 * 1024,
                    fetch_max_wait_ms=50,
                )
            except KafkaError as exc:
                raise StorageError(
                    f"cannot reach Kafka at {self._bootstrap}: {_reason(exc)}"
                ) from None
        return self._consumer

    def _assign(self, topic: str, partitions: Sequence[int]) -> list[TopicPartition]:
        consumer = self._consumer_()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if set(consumer.assignment()) != set(tps):
            consumer.assign(tps)
        return tps

    def read(self, stream: str, positions: Mapping[int, int], limit: int) -> list[LogRecord]:
        """Fetch until each partition has ``limit`` records or has reached its
        high watermark as reported by the fetch itself."""
        return self.read_topic(topic_for(stream, self.prefix), positions, limit)

    def topic_partitions(self, topic: str) -> int:
        """The partition count of any topic (an upstream's ingest topic); 0 when
        it does not exist."""
        try:
            admin = KafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="engage-admin")
        except KafkaError as exc:
            raise StorageError(f"cannot reach Kafka at {self._bootstrap}: {_reason(exc)}") from None
        try:
            if topic not in set(admin.list_topics()):
                return 0
            return _describe(admin, topic)
        except KafkaError as exc:
            raise StorageError(f"describing {topic} failed: {_reason(exc)}") from None
        finally:
            admin.close()

    def read_topic(self, topic: str, positions: Mapping[int, int], limit: int) -> list[LogRecord]:
        """``read`` for a topic named in full (not one of the engine's streams)."""
        if not positions:
            return []
        try:
            tps = self._assign(topic, list(positions))
            consumer = self._consumer_()
            for tp in tps:
                consumer.seek(tp, positions[tp.partition])
            got: dict[int, list[LogRecord]] = defaultdict(list)
            pending = {tp.partition for tp in tps}
            ends = self._ends(topic, pending)
            pending = {p for p in pending if positions[p] < ends[p]}
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=200, max_records=limit * len(tps))
                for tp, records in batch.items():
                    bucket = got[tp.partition]
                    for r in records:
                        if len(bucket) < limit and r.offset >= positions[tp.partition]:
                            bucket.append(
                                LogRecord(tp.partition, r.offset, (r.key or b"").decode(), r.value)
                            )
                for p in list(pending):
                    bucket = got[p]
                    next_offset = bucket[-1].offset + 1 if bucket else positions[p]
                    if len(bucket) >= limit or next_offset >= ends[p]:
                        pending.discard(p)
        except KafkaError as exc:
            raise StorageError(f"reading {topic} failed: {_reason(exc)}") from None
        return [r for p in sorted(got) for r in got[p]]

    def customer_history(self, customer_id: str, until: int | None = None) -> list[LogRecord]:
        """The customer's touchpoints, in log order (``until`` is applied by the
        caller after decoding: a Kafka record carries no event time outside its
        payload). Kafka has no index by key, so this reads the customer's whole
        partition: right for a look-up from the CLI or the dashboard, not for a
        hot path (the PostgreSQL log answers from an index)."""
        partition = partition_for(customer_id, self._partitions)
        return [
            r
            for chunk in read_stream(self, TOUCHPOINTS, partitions=[partition])
            for r in chunk
            if r.key == customer_id
        ]

    def customer_histories(self, customer_ids: Collection[str]) -> dict[str, list[LogRecord]]:
        """Reads each partition that holds one of them once."""
        wanted = set(customer_ids)
        partitions = sorted({partition_for(c, self._partitions) for c in wanted})
        out: dict[str, list[LogRecord]] = {}
        if not partitions:
            return out
        for chunk in read_stream(self, TOUCHPOINTS, partitions=partitions):
            for r in chunk:
                if r.key in wanted:
                    out.setdefault(r.key, []).append(r)
        return out

    def find_triggers(self, query: TriggerQuery = ALL_TRIGGERS) -> list[LogRecord]:
        """Triggers matching the query, by (fired_at, trigger_id), each once
        (a relay crash can repeat a trigger on the topic). Reads the customer's
        partition, or every partition without a customer."""
        customer_id = query.customer_id
        partitions = (
            [partition_for(customer_id, self._partitions)]
            if customer_id is not None
            else list(range(self._partitions))
        )
        records = [
            r
            for chunk in read_stream(self, TRIGGERS, partitions=partitions)
            for r in chunk
            if customer_id is None or r.key == customer_id
        ]
        found: dict[str, tuple[int, LogRecord]] = {}
        for record, item in zip(
            records, TriggerCodec().decode_many([r.payload for r in records]), strict=True
        ):
            if isinstance(item, CodecError) or item.trigger_id in found:
                continue
            if query.matches(item.customer_id, item.rule_id, item.fired_at):
                found[item.trigger_id] = (item.fired_at, record)
        ordered = [found[tid][1] for tid in sorted(found, key=lambda t: (found[t][0], t))]
        return ordered[: query.limit]

    def _ends(self, topic: str, partitions: set[int]) -> dict[int, int]:
        """The next offset to be written, per partition.

        ``end_offsets`` (ListOffsets) would be the usual answer, but the Tansu
        broker reports the last *batch's* base offset plus one there, so the
        end is read from a fetch instead: seek to the reported end minus one
        and take the fetch's high watermark (exact on Kafka and Tansu alike).
        """
        consumer = self._consumer_()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        listed = end_offsets(consumer, tps)
        ends = {tp.partition: int(listed.get(tp) or 0) for tp in tps}
        probe = [tp for tp in tps if ends[tp.partition] > 0]
        if not probe:
            return ends
        prober = KafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-probe",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            max_partition_fetch_bytes=64 * 1024,
        )
        try:
            prober.assign(probe)
            for tp in probe:
                prober.seek(tp, ends[tp.partition] - 1)
            deadline = time.monotonic() + 30
            waiting = set(probe)
            while waiting and time.monotonic() < deadline:
                batch = prober.poll(timeout_ms=200)
                for tp, records in batch.items():
                    if records:
                        ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
                for tp in list(waiting):
                    high = prober.highwater(tp)
                    if high is not None:
                        ends[tp.partition] = max(ends[tp.partition], int(high))
                        waiting.discard(tp)
        finally:
            prober.close()
        return ends

    def heads(self, stream: str) -> dict[int, int]:
        topic = topic_for(stream, self.prefix)
        try:
            return self._ends(topic, set(range(self._partitions)))
        except KafkaError as exc:
            raise StorageError(f"reading {topic} failed: {_reason(exc)}") from None

    def wait(self, timeout: float) -> bool:
        """Poll the topics' ends until they move past those seen by the previous
        call (the first call only records them), or the timeout passes."""
        deadline = time.monotonic() + timeout
        before = self._seen_ends
        while True:
            now = self._ends_listed()
            if before is None:
                self._seen_ends = before = now
            elif now != before:
                self._seen_ends = now
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _ends_listed(self) -> dict[TopicPartition, int]:
        """Cheap change detection: ListOffsets moves on every append even where
        Tansu under-reports it."""
        consumer = self._consumer_()
        tps = [
            TopicPartition(topic_for(stream, self.prefix), p)
            for stream in STREAMS
            for p in range(self._partitions)
        ]
        try:
            return end_offsets(consumer, tps)
        except KafkaError as exc:
            raise StorageError(f"reading the Kafka log failed: {_reason(exc)}") from None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def end_offsets(
    consumer: KafkaConsumer, tps: Sequence[TopicPartition], patience: float = 30.0
) -> dict[TopicPartition, int]:
    """``consumer.end_offsets``, asked one topic at a time and retried.

    kafka-python 3.0 answers a ListOffsets request for several topics with a
    ``KeyError`` when the consumer's metadata lacks the leader of some of them:
    those partitions are left out of the request instead of being retried
    (``Fetcher._group_list_offset_requests``). A consumer assigned to the
    triggers topic knows only that topic's leaders, so ``engage triggers
    --follow``, which watches every topic's end, crashed on its first wait.
    One topic per request means either all its leaders are known or none
    (which kafka-python does retry after a metadata refresh); a partition whose
    leader is still being elected is retried here until ``patience`` runs out."""
    by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
    for tp in tps:
        by_topic[tp.topic].append(tp)
    found: dict[TopicPartition, int] = {}
    for topic, wanted in by_topic.items():
        deadline = time.monotonic() + patience
        while True:
            try:
                found.update((tp, int(o)) for tp, o in consumer.end_offsets(wanted).items())
                break
            except KeyError as exc:
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"Kafka did not report the end of {topic} within {patience:.0f}s "
                        f"(no leader known for {exc})"
                    ) from None
                consumer.partitions_for_topic(topic)  # asks for the topic's metadata
                time.sleep(0.1)
    return found


def check_partitions(topic_partitions: int, database_partitions: int, prefix: str) -> None:
    if topic_partitions != database_partitions:
        raise ConfigError(
            f"{topic_for(TOUCHPOINTS, prefix)} has {topic_partitions} partitions but the "
            f"database was created for {database_partitions}; customers would land on "
            "different partitions"
        )
