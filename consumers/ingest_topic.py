"""JSON on Kafka: an upstream's topic validated into the touchpoints log.

Upstream systems that already write JSON to Kafka name their topic
(``engage worker --ingest-topic NAME``). Each record's value is one event in
the native, Segment or CloudEvents shape (told apart per record,
``events.shapes``); it goes through the one validator and the one publisher,
so a bad record lands in the dead-letter store with its raw text (source
``kafka:TOPIC/PARTITION``, line = the record's offset) and the records after
it flow on.

Exactly once, and why: per batch, one PostgreSQL transaction locks the
topic's rows in ``ingest_offsets``, reads from the stored offsets, appends
the valid events to the touchpoints log, writes the dead letters and moves
the offsets, then commits. The offsets move only after the append is
acknowledged, so a crash (even ``kill -9``) at any point loses nothing: the
batch is read again. What a crash after the append but before the commit
sends twice carries the same ``event_id`` (the idempotency key), which the
PostgreSQL log refuses and the Kafka-mode processor drops (``seen_events``);
the dead letters are in the rolled-back transaction, so they are written
once. Two workers pumping the same topic serialise on the row locks and
never read the same batch twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import orjson
import psycopg

from events.adapters.connection import connect
from events.adapters.postgres import add_dead_letters
from events.codec import TouchpointCodec
from events.dead_letters import DeadLetterRow
from events.ingest import Rejection
from events.limits import TimeWindow
from events.log import Log, LogRecord
from events.publisher import Parsed, Publisher, PublishReport
from events.shapes import parse_shaped

log = logging.getLogger("engage.ingest_topic")

BATCH: Final = 5_000


class _InTransaction:
    """A dead-letter sink writing in the pump's transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def add(self, rows: Sequence[DeadLetterRow]) -> None:
        add_dead_letters(self._conn, rows)


class IngestTopicPump:
    """Moves one upstream topic into the touchpoints log, a batch at a time.

    ``reader`` reads the upstream topic (``KafkaLog.read_topic``); ``log`` is
    the touchpoints log to append to; ``window()`` bounds ``occurred_at``
    (asked per batch: a worker runs for months)."""

    def __init__(
        self,
        dsn: str,
        topic: str,
        partitions: int,
        reader: Any,
        log: Log,
        codec: TouchpointCodec,
        window: Callable[[], TimeWindow | None] = lambda: None,
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self._reader = reader
        self._log = log
        self._codec = codec
        self._window = window
        self._conn: psycopg.Connection[Any] = connect(dsn, autocommit=True)
        self._conn.execute(
            'INSERT INTO ingest_offsets (topic, partition, "offset")'
            " SELECT %s, p, 0 FROM generate_series(0, %s - 1) AS p ON CONFLICT DO NOTHING",
            (topic, partitions),
        )

    def positions(self) -> dict[int, int]:
        rows = self._conn.execute(
            'SELECT partition, "offset" FROM ingest_offsets WHERE topic = %s', (self.topic,)
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def pump_once(self, limit: int = BATCH) -> PublishReport:
        """One batch: read, validate, append, dead-letter, move the offsets."""
        with self._conn.transaction():
            rows = self._conn.execute(
                'SELECT partition, "offset" FROM ingest_offsets WHERE topic = %s'
                " ORDER BY partition FOR UPDATE",
                (self.topic,),
            ).fetchall()
            positions = {int(p): int(o) for p, o in rows}
            records = self._reader.read_topic(self.topic, positions, limit)
            if not records:
                return PublishReport()
            window = self._window()
            publisher = Publisher(self._log, _InTransaction(self._conn), self._codec, window)
            report = PublishReport()
            for partition in sorted({r.partition for r in records}):
                mine = [r for r in records if r.partition == partition]
                source = f"kafka:{self.topic}/{partition}"
                part = publisher.publish_parsed(self._parse(mine, window), source)
                report.accepted += part.accepted
                report.duplicates += part.duplicates
                report.rejected += part.rejected
                report.rejections.extend(part.rejections)
                self._conn.execute(
                    'UPDATE ingest_offsets SET "offset" = %s WHERE topic = %s AND partition = %s',
                    (mine[-1].offset + 1, self.topic, partition),
                )
            report.lines = len(records)
            return report

    def _parse(self, records: list[LogRecord], window: TimeWindow | None) -> Iterator[Parsed]:
        for record in records:
            raw = record.payload.decode("utf-8", errors="backslashreplace")
            try:
                text = record.payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not valid UTF-8: {exc.reason} at byte {exc.start}"
                yield record.offset, Rejection(record.offset, "(record)", reason, raw), raw, 0
                continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                rejection = Rejection(record.offset, "(record)", f"not valid JSON: {exc}", raw)
                yield record.offset, rejection, raw, 0
                continue
            item = parse_shaped(obj, record.offset, "auto", text, window)
            yield record.offset, item, text, 0

    def run(self, stop: threading.Event, idle_s: float = 0.5, on_batch: Any = None) -> None:
        """Pump until ``stop`` is set; a broker or database failure is logged
        and retried (the offsets are only moved by a committed batch)."""
        while not stop.is_set():
            try:
                report = self.pump_once()
            except Exception as exc:  # retried: nothing was committed
                log.warning("ingest topic %s: %s; retrying", self.topic, exc)
                stop.wait(2.0)
                continue
            if report.lines and on_batch is not None:
                on_batch(report)
            if not report.lines:
                stop.wait(idle_s)

    def close(self) -> None:
        self._conn.close()
