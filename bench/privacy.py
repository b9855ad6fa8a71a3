"""Benchmark: the cost of encryption (issue 14) on publish and processing.

For each history shape, the same lines are published and then processed with
the default rules, once with personal fields sealed (the default: a key per
person, AES-GCM) and once without (the same publisher and pipeline given no
key ring), into fresh databases, in alternating order for ``--rounds`` rounds
in one process run; the best rate of each is kept. Reports the ratios
sealed/plain: the target is at least 0.90 for both.

    python bench/privacy.py --events 200000 [--shapes short,long] [--rounds 3]

Prints one JSON object. Uses ENGAGE_DATABASE_URL's server when set, else a
throwaway embedded one (``bench.support``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import SHAPES, history
from bench.support import admin_server, database_name
from consumers.pipeline import Pipeline
from consumers.processor import DEFAULT_BATCH, Processor
from engage.config import Settings
from engage.database import connect, create_database, drop_database, migrate
from engage.runtime import Engine, wall_micros
from events.limits import TimeWindow
from events.publisher import Publisher


def one_run(
    admin: str, tmp: Path, lines: list[str], sealed: bool, args: argparse.Namespace
) -> tuple[float, float, int]:
    """(publish events/s, process events/s, sealed events) on a fresh database."""
    name = database_name()
    dsn = create_database(admin, name)
    try:
        migrate(dsn, args.partitions)
        with Engine.open(Settings(dsn, tmp, None, args.partitions)) as engine:
            keys = engine.keys if sealed else None
            window = TimeWindow.around(wall_micros(), engine.settings.max_future)
            publisher = Publisher(engine.stream, engine.dead_letters, engine.codec, window, keys)
            started = time.perf_counter()
            report = publisher.publish_lines(lines, "bench")
            publish_s = time.perf_counter() - started
            pipeline = Pipeline(
                engine.codec, rules=engine.rules, publish_to=engine.partitions, keys=keys
            )
            processor = Processor(engine.stream, engine.store, pipeline, args.batch_size)
            started = time.perf_counter()
            stats = processor.run(until_idle=True)
            process_s = time.perf_counter() - started
            with connect(dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM touchpoints"
                    " WHERE position('~sealed'::bytea IN payload) > 0"
                ).fetchone()
            sealed_events = int(row[0]) if row else 0
        return report.accepted / publish_s, stats.events / process_s, sealed_events
    finally:
        drop_database(admin, name)


def run_shape(admin: str, tmp: Path, shape: str, args: argparse.Namespace) -> dict[str, object]:
    lines, _ = history(shape, args.events)
    best: dict[bool, list[float]] = {True: [0.0, 0.0], False: [0.0, 0.0]}
    sealed_events = 0
    for round_ in range(args.rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for sealed in order:
            publish, process, n = one_run(admin, tmp, lines, sealed, args)
            best[sealed][0] = max(best[sealed][0], publish)
            best[sealed][1] = max(best[sealed][1], process)
            if sealed:
                sealed_events = n
    return {
        "shape": shape,
        "events": len(lines),
        "sealed_events": sealed_events,
        "publish_events_per_s_plain": round(best[False][0]),
        "publish_events_per_s_sealed": round(best[True][0]),
        "publish_ratio": round(best[True][0] / best[False][0], 3),
        "process_events_per_s_plain": round(best[False][1]),
        "process_events_per_s_sealed": round(best[True][1]),
        "process_ratio": round(best[True][1] / best[False][1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--shapes", default="short,long")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    for shape in shapes:
        if shape not in SHAPES:
            parser.error(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    with admin_server("engage-bench-privacy-") as (admin, workdir):
        results = [run_shape(admin, workdir, shape, args) for shape in shapes]
    print(
        orjson.dumps(
            {
                "benchmark": "privacy",
                "python": platform.python_version(),
                "rounds": args.rounds,
                "shapes": results,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
