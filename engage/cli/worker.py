"""``engage worker``: one Faust worker of the Kafka-mode processor group."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Annotated

import typer

from engage.cli.app import app, err, parse_time_option
from engage.cli.rules import RulesOption
from engage.config import Settings
from engage.errors import ConfigError
from engage.runtime import Engine


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
        run_worker(faust_app, loglevel)
