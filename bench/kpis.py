"""Benchmark: what keeping the KPIs current costs the processor, and replay speed.

Publishes one synthetic history into two fresh databases, processes one with
the KPI deltas on and the other with them off (the baseline, in the same
process run), then replays the first (rebuild + swap, shadow rules).

    python bench/kpis.py --events 200000

Prints one JSON object; timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import consumers.pipeline as pipeline_module
from bench.support import admin_server, fresh_database
from consumers.replay import replay
from engage.config import Settings
from engage.database import migrate
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.model import Touchpoint, TriggerEvent
from projections.kpis import KpiBatch
from projections.profile import Profile


class _NoKpis(KpiBatch):
    """The baseline: the same pipeline with every KPI hook a no-op."""

    def customer(self, p: Profile) -> None:
        pass

    def observe(self, p: Profile, event: Touchpoint) -> None:
        pass

    def count_triggers(self, triggers: Any) -> None:
        _: list[TriggerEvent] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    spec = HistorySpec(customers=max(10, args.events // 40), days=180, seed=1)
    lines = list(generate_lines(spec))
    with admin_server("engage-bench-kpis-") as (admin, _):
        _measure(args, lines, admin)


def _measure(args: argparse.Namespace, lines: list[str], admin: str) -> None:
    out: dict[str, Any] = {
        "events": len(lines),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    rates = []
    for kpis_on in (True, False):
        with fresh_database(admin) as dsn:
            migrate(dsn, args.partitions)
            with Engine.open(Settings(dsn, Path(tempfile.gettempdir()), None)) as engine:
                engine.publisher().publish_lines(lines, "bench")
                pipeline_module.KpiBatch = KpiBatch if kpis_on else _NoKpis  # type: ignore[misc]
                started = time.perf_counter()
                stats = engine.processor().run(until_idle=True)
                rates.append(stats.events / (time.perf_counter() - started))
                pipeline_module.KpiBatch = KpiBatch  # type: ignore[misc]
                if kpis_on:
                    started = time.perf_counter()
                    result = replay(engine, workers=args.workers)
                    elapsed = time.perf_counter() - started
                    out["replay_events_per_s"] = round(result.events / elapsed)
                    out["replay_workers"] = args.workers
    out["process_events_per_s_kpis_on"] = round(rates[0])
    out["process_events_per_s_kpis_off"] = round(rates[1])
    out["kpi_cost"] = round(1 - rates[0] / rates[1], 3)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
