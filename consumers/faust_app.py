"""The Faust worker (Kafka mode): an app factory, its agent and its timer.

``create_app`` builds a fresh faust-streaming app per call; nothing is
attached to a module-level app at import time. The agent body is thin: it
turns each ``stream.take_events`` batch into ``LogRecord``s and hands them to
``GroupMember`` (the one pipeline, one PostgreSQL transaction per batch).

Offsets live in PostgreSQL, beside the profiles they produced. Faust also
commits offsets to Kafka (harmless, and visible to the usual lag tools), but
on every partition assignment the worker seeks each touchpoints partition to
the offset stored in PostgreSQL (``_PostgresSeekingConsumer``), so it resumes
exactly where the last committed batch ended, whoever committed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT

from consumers.group_member import GroupMember
from events.adapters.kafka import topic_for
from events.log import TOUCHPOINTS, LogRecord

DEFAULT_WORKER_BATCH = 5_000
"""Records per batch (``stream.take_events``): large batches amortise the
profile load/upsert exactly as in the embedded loop."""

log = logging.getLogger("engage.worker")


class _PostgresSeekingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, but "committed" means committed in PostgreSQL.

    Faust seeks every assigned partition to its committed offset after each
    rebalance (``perform_seek`` → ``seek_to_committed``); overriding that one
    step is the only place a seek cannot be undone by Faust's own recovery."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = dict(await super().seek_to_committed())
        batches: GroupMember = self.app.engage_batches  # type: ignore[attr-defined]
        topic: str = self.app.engage_topic  # type: ignore[attr-defined]
        stored = await asyncio.to_thread(batches.positions)
        mine = {tp: stored.get(tp.partition, 0) for tp in self.assignment() if tp.topic == topic}
        if mine:
            await self.seek_wait(mine)
            committed.update(mine)
            log.info(
                "resumed from PostgreSQL offsets %s",
                sorted((k.partition, v) for k, v in mine.items()),
            )
        return committed


class _Transport(faust_aiokafka.Transport):
    Consumer = _PostgresSeekingConsumer


class EngageApp(faust.App):
    """A Faust app whose consumer seeks to the offsets stored in PostgreSQL."""

    engage_batches: GroupMember
    engage_topic: str

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def faust_settings(
    bootstrap: str, *, batch_size: int = DEFAULT_WORKER_BATCH, session_timeout: float = 30.0
) -> dict[str, Any]:
    """The Faust app settings of a worker (and of the benchmark's bare agent,
    ``bench/kafka.py``, so its ceiling is measured under the same settings):
    raw bytes in and out, topics made by ``engage`` (never declared by Faust),
    no web server or tables, offsets committed to Kafka every batch (the
    truth is in PostgreSQL), and ``acks=all``."""
    return {
        "broker": f"kafka://{bootstrap}",
        "value_serializer": "raw",
        "key_serializer": "raw",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        "autodiscover": False,
        "store": "memory://",
        "stream_buffer_maxsize": max(batch_size * 2, 4096),
        "broker_commit_every": batch_size,
        "broker_commit_interval": 2.0,
        "broker_session_timeout": session_timeout,
        "broker_heartbeat_interval": 1.0,
        "broker_max_poll_interval": 300.0,
        "producer_acks": -1,
    }


def create_app(
    batches: GroupMember,
    *,
    bootstrap: str,
    partitions: int,
    prefix: str,
    batch_size: int = DEFAULT_WORKER_BATCH,
    within: float = 0.5,
    tick_every: float = 1.0,
    session_timeout: float = 30.0,
) -> EngageApp:
    """A worker app over the Kafka broker at ``bootstrap`` (topics named
    ``<prefix>.touchpoints`` and so on, ``partitions`` each) that hands its
    batches to ``batches`` (``Engine.group_member`` wires one)."""
    topic_name = topic_for(TOUCHPOINTS, prefix)
    app = EngageApp(
        f"{prefix}-processor",
        topic_partitions=partitions,
        **faust_settings(bootstrap, batch_size=batch_size, session_timeout=session_timeout),
    )
    app.engage_batches = batches
    app.engage_topic = topic_name
    topic = app.topic(
        topic_name,
        value_serializer="raw",
        key_serializer="raw",
        partitions=partitions,
    )

    def caught_up(last: Mapping[int, int]) -> list[int]:
        """Partitions whose next offset has reached the high watermark."""
        done = []
        for tp in app.consumer.assignment():
            if tp.topic != topic_name:
                continue
            high = app.consumer.highwater(tp)
            nxt = last.get(tp.partition)
            if high is not None and nxt is not None and nxt >= high:
                done.append(tp.partition)
        return done

    async def process(stream: Any) -> None:  # a faust Stream (its type lacks take_events)
        async for events in stream.take_events(batch_size, within=within):
            records = to_records(events)
            last = {r.partition: r.offset + 1 for r in records}
            await asyncio.to_thread(batches.apply, records, caught_up(last))

    app.agent(topic, name=f"{prefix}-touchpoints")(process)

    async def tick() -> None:
        stored = await asyncio.to_thread(batches.positions)
        await asyncio.to_thread(batches.tick, caught_up(stored))

    app.timer(tick_every, name=f"{prefix}-timers")(tick)
    return app


def to_records(events: Sequence[EventT[Any]]) -> list[LogRecord]:
    out = []
    for event in events:
        message = event.message
        key = message.key
        out.append(
            LogRecord(
                message.partition,
                message.offset,
                key.decode() if isinstance(key, bytes) else str(key or ""),
                bytes(message.value or b""),
            )
        )
    return out


def run_worker(app: faust.App, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT (faust's Worker installs the handlers)."""
    from faust.worker import Worker

    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
