"""Benchmark: HTTP ingest through a real ``engage serve`` on loopback.

A uvicorn server runs in its own process (``engage serve --no-process
--no-deliver``, so only ingest is measured); this process posts events with
concurrent keep-alive connections, first one event per request, then batches,
then the same batches as Segment "Order Completed" tracks through Segment's
``/v1/batch`` (the compatible endpoint's cost against the native one).
The baseline, in the same run, is the in-process ``Publisher`` (the path of
``engage publish``) on the same number of events: the ratio shows what HTTP
costs on top of validation, encoding and the append.

    python bench/http.py --single 2000 --batches 200 --batch-size 500

Prints one JSON object. Bounded in count and time (--max-seconds per phase).
Uses ENGAGE_DATABASE_URL's server when set (a fresh database there), otherwise
a throwaway embedded PostgreSQL.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path and its name would shadow
# the standard library's ``http`` package: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import time
import urllib.request
from typing import Any

import httpx
import orjson

from bench.support import admin_server, fresh_database
from engage.config import Settings
from engage.runtime import Engine


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _events(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "customer_id": f"c-{i % 5000:05d}",
            "type": "purchase",
            "occurred_at": f"2026-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            "channel": "web",
            "source": "bench",
            "properties": {"order_id": f"o-{prefix}-{i}", "amount": 10 + i % 90},
        }
        for i in range(n)
    ]


def _segment(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same purchases as Segment "Order Completed" tracks (what its SDKs send)."""
    return [
        {
            "type": "track",
            "messageId": e["event_id"].replace("b-", "g-", 1),
            "userId": e["customer_id"],
            "event": "Order Completed",
            "timestamp": e["occurred_at"],
            "properties": {
                "order_id": e["properties"]["order_id"],
                "revenue": e["properties"]["amount"],
            },
            "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        }
        for e in events
    ]


async def _post_all(
    url: str,
    key: str,
    bodies: list[bytes],
    concurrency: int,
    max_seconds: float,
    path: str = "/v1/events",
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    accepted = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    deadline = time.perf_counter() + max_seconds
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors, accepted
            while not queue.empty() and time.perf_counter() < deadline:
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1
                else:
                    accepted += response.json()["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "events_accepted": accepted,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "events_per_s": round(accepted / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "truncated_by_time": len(latencies) < len(bodies),
        "latencies": latencies,
    }


def _combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one kind as one phase: totals, rates over the summed time,
    percentiles over every request, and each round's rate."""
    latencies = [x for r in rounds for x in r["latencies"]]
    seconds = sum(r["seconds"] for r in rounds)
    events = sum(r["events_accepted"] for r in rounds)
    return {
        "requests": len(latencies),
        "events_accepted": events,
        "errors": sum(r["errors"] for r in rounds),
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "events_per_s_by_round": [r["events_per_s"] for r in rounds],
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "truncated_by_time": any(r["truncated_by_time"] for r in rounds),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"engage serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("engage serve did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2000, help="single-event requests")
    parser.add_argument("--batches", type=int, default=200, help="batched requests")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in flight")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap per phase")
    parser.add_argument(
        "--rounds", type=int, default=4, help="native and Segment batches alternate this often"
    )
    args = parser.parse_args()

    with (
        admin_server("engage-bench-http-") as (admin, workdir),
        fresh_database(admin, "engage_bench_http") as dsn,
    ):
        _measure(args, dsn, str(workdir))


def _measure(args: argparse.Namespace, dsn: str, tmp: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_DATABASE_URL"] = dsn
    env["ENGAGE_HOME"] = str(Path(tmp) / "home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    engage = [sys.executable, "-m", "engage.cli"]
    server = None
    try:
        created = subprocess.run(
            [*engage, "keys", "create", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.split()[-1]
        server = subprocess.Popen(
            [*engage, "serve", "--port", str(port), "--no-process", "--no-deliver"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_healthy(url, server)

        single_bodies = [orjson.dumps(e) for e in _events("s", args.single)]
        events = _events("b", args.batches * args.batch_size)
        batch_bodies = [
            orjson.dumps(events[i : i + args.batch_size])
            for i in range(0, len(events), args.batch_size)
        ]
        # warm up connections and the server's pool
        asyncio.run(_post_all(url, key, [orjson.dumps([])] * 50, args.concurrency, 30))
        single = asyncio.run(_post_all(url, key, single_bodies, args.concurrency, args.max_seconds))
        # Segment's /v1/batch with the same events and batch size, in the same run:
        # the two alternate in rounds, so a change in the machine's load (other
        # jobs share it) falls on both alike
        tracks = _segment(events)
        segment_bodies = [
            orjson.dumps({"batch": tracks[i : i + args.batch_size]})
            for i in range(0, len(tracks), args.batch_size)
        ]
        native_rounds: list[dict[str, Any]] = []
        segment_rounds: list[dict[str, Any]] = []
        cap = args.max_seconds / args.rounds
        for r in range(args.rounds):
            native_rounds.append(
                asyncio.run(
                    _post_all(url, key, batch_bodies[r :: args.rounds], args.concurrency, cap)
                )
            )
            segment_rounds.append(
                asyncio.run(
                    _post_all(
                        url,
                        key,
                        segment_bodies[r :: args.rounds],
                        args.concurrency,
                        cap,
                        "/v1/batch",
                    )
                )
            )
        batched, segment = _combined(native_rounds), _combined(segment_rounds)

        # the baseline: the same number of events through the in-process publisher
        baseline_lines = [orjson.dumps(e) for e in _events("p", len(events))]
        settings = Settings(database_url=dsn, home=Path(tmp) / "home", kafka_bootstrap=None)
        with Engine.open(settings) as engine:
            started = time.perf_counter()
            report = engine.publisher().publish_lines(baseline_lines, "bench")
            direct_s = time.perf_counter() - started
        direct = round(report.accepted / direct_s, 1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    print(
        orjson.dumps(
            {
                "benchmark": "http_ingest",
                "machine": {
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "concurrency": args.concurrency,
                "single": {k: v for k, v in single.items() if k != "latencies"},
                "batched": {"batch_size": args.batch_size, **batched},
                "segment_batch": {"batch_size": args.batch_size, **segment},
                "segment_vs_native_batched": round(
                    segment["events_per_s"] / max(batched["events_per_s"], 1e-9), 3
                ),
                "baseline_publisher_events_per_s": direct,
                "batched_vs_publisher": round(batched["events_per_s"] / direct, 3),
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
