"""``engage worker``: one Faust worker of the Kafka-mode processor group."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Annotated

import typer

from engage.cli.app import app, err, parse_time_option
from engage.cli.rules import RulesOption
from engage.config import Settings
from engage.errors import ConfigError
from engage.runtime import Engine, wall_micros
from events.limits import TimeWindow


def start_ingest_topic(
    engine: Engine, settings: Settings, topic: str, now: int | None
) -> tuple[threading.Event, threading.Thread]:
    """A thread pumping ``topic`` into the touchpoints log (consumers.ingest_topic),
    with a Kafka client of its own (kafka-python's are not thread-safe)."""
    from consumers.dlq_relay import DeadLetterRelay
    from consumers.ingest_topic import IngestTopicPump
    from events.adapters.kafka import KafkaLog
    from events.codec import TouchpointCodec

    assert settings.kafka_bootstrap is not None
    kafka = KafkaLog(
        settings.kafka_bootstrap,
        engine.partitions,
        prefix=settings.kafka_topic_prefix,
        client_id="engage-ingest",
    )
    partitions = kafka.topic_partitions(topic)
    if partitions == 0:
        kafka.close()
        raise ConfigError(f"--ingest-topic: no topic {topic!r} on {settings.kafka_bootstrap}")

    def window() -> TimeWindow:
        at = wall_micros() if now is None else max(now, wall_micros())
        return TimeWindow.around(at, settings.max_future)

    pump = IngestTopicPump(engine.dsn, topic, partitions, kafka, kafka, TouchpointCodec(), window)
    relay = DeadLetterRelay(engine.dsn, kafka)
    stop = threading.Event()

    def run() -> None:
        try:
            pump.run(stop, on_batch=lambda report: relay.drain() if report.rejected else None)
        finally:
            pump.close()
            relay.close()
            kafka.close()

    thread = threading.Thread(target=run, name=f"ingest:{topic}", daemon=True)
    thread.start()
    err.print(f"worker: validating {topic} ({partitions} partitions) into the log", markup=False)
    return stop, thread


@app.command()
def worker(
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            help="Kafka bootstrap servers (host:port,...); default: ENGAGE_KAFKA_BOOTSTRAP.",
        ),
    ] = None,
    rules: RulesOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Records per batch (one PostgreSQL transaction each).")
    ] = 5_000,
    now: Annotated[
        str | None, typer.Option(help="Treat the clock as at least this ISO 8601 instant.")
    ] = None,
    session_timeout: Annotated[
        float,
        typer.Option(
            min=3.0,
            help="Seconds without a heartbeat before the group gives a dead worker's "
            "partitions to the others. On the Tansu broker a worker's first join also "
            "takes about half of it: --session-timeout 6 starts in about 6 s instead of 18.",
        ),
    ] = 30.0,
    loglevel: Annotated[str, typer.Option(help="Faust's log level.")] = "warning",
    ingest_topic: Annotated[
        list[str] | None,
        typer.Option(
            "--ingest-topic",
            metavar="NAME",
            help="Also validate the JSON records of this upstream topic (native, Segment or "
            "CloudEvents shape) into the touchpoints log; bad records go to the dead-letter "
            "store. Repeat for several topics.",
        ),
    ] = None,
) -> None:
    """Start a Faust worker: consume engage.touchpoints as part of a consumer group.

    Start as many as you like (up to the partition count): the group shares the
    partitions among them and rebalances when one stops or dies. Each batch's
    profiles, offsets and triggers commit in one PostgreSQL transaction, and a
    worker that takes over a partition resumes from the offset stored there, so
    a crash or a rebalance loses nothing and doubles nothing. Triggers go to
    engage.triggers, rejected records to engage.dlq. Stop with Ctrl-C or SIGTERM.
    """
    from consumers.faust_app import create_app, run_worker

    settings = Settings.from_env()
    if kafka:
        settings = replace(settings, kafka_bootstrap=kafka)
    if not settings.kafka_bootstrap:
        raise ConfigError("engage worker needs Kafka: set ENGAGE_KAFKA_BOOTSTRAP or pass --kafka")
    now_us = parse_time_option(now, "--now")
    with Engine.open(settings, rules=rules) as engine:
        faust_app = create_app(
            engine.group_member(now=now_us),
            bootstrap=settings.kafka_bootstrap,
            partitions=engine.partitions,
            prefix=settings.kafka_topic_prefix,
            batch_size=batch_size,
            session_timeout=session_timeout,
        )
        err.print(
            f"worker: consuming {settings.kafka_topic_prefix}.touchpoints from "
            f"{settings.kafka_bootstrap} ({engine.partitions} partitions); Ctrl-C to stop\n"
            f"worker: joining the consumer group first; on the Tansu broker that takes about "
            f"half of --session-timeout ({session_timeout:g} s)",
            markup=False,
        )
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        pumps = [start_ingest_topic(engine, settings, name, now_us) for name in ingest_topic or ()]
        try:
            run_worker(faust_app, loglevel)
        finally:
            for stop, thread in pumps:
                stop.set()
                thread.join(10)
