"""Benchmark: the pipeline with identity resolution against the same history
without it (issue 13's target: within 10%).

Per shape (``short``, ``long``: see ``bench/pipeline.py``), the synthetic
history is published twice into fresh databases: as generated (the
baseline: every event carries only its customer id), and with the issue's
identity mix (``engage.synthetic.identities``: 10% of events carry an
``anonymous_id``, 1% link it to the customer), through the one publish step,
whose identity stage keys events by person and writes the identity records
(best of ``--rounds``, alternating, each into a fresh database).
Then both logs are processed with the default rule pack, alternating, best
of ``--rounds`` each; the processing of the mix includes re-deriving every
merged person from the log.

    python bench/identity_pipeline.py --events 200000 [--shapes short,long] [--rounds 5]

A third run takes the same mixed history through the engine with identity
resolution off (every event keyed by its own id, so a device is a customer of
its own, as before identity): ``*_ratio_same_input`` is the cost of
resolving identities on the same input, ``*_ratio`` the cost against the
history without any identifiers (which also has fewer persons and fewer
triggers: a device that buys anonymously is thanked as a person of its own
until it is linked). ``*_ratio_same_input_paired`` is the median over rounds
of the ratio within each round, whose runs are back to back: best over best
swung by up to 0.1 between runs when the machine's speed drifted.
``publish_cpu_s`` is this process's CPU per publish (all threads, median over
rounds), and ``publish_cpu_ratio_same_input_paired`` the unresolved run's
CPU over the identity run's: publishing with identity is CPU-bound, so this
ratio is close to the rate's (``docs/performance.md``, fourth pass).

With ``--from-lines`` every publish reads the history as JSON Lines through
``Publisher.publish_lines``, parsing included, the path of ``engage publish``
and of ``bench/pipeline.py`` (the mix as an SDK sends it: an anonymous-only
line names no customer id); by default it starts from parsed touchpoints,
which leaves the parsing out of both sides of each ratio (the stricter
figure: the identity stage is a larger share of what is left).

Prints one JSON object. Runs against a fresh database: on the server named
by ENGAGE_DATABASE_URL when set, otherwise on a throwaway embedded server.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import _restart, history
from bench.support import database_name, run_shapes, shape_parser
from engage.config import Settings
from engage.database import connect, create_database, drop_database, migrate
from engage.runtime import Engine
from engage.synthetic.identities import with_identities, with_identities_lines
from events.ingest import parse_line
from events.model import Touchpoint


def _publish(
    engine: Engine, events: list[Touchpoint] | list[str], identity: bool = True
) -> tuple[float, float]:
    """Events per second through the publish step, in its own batch size
    (``events.publisher.BATCH``), and the CPU seconds this process spent on
    it (all threads: with the appends overlapped, the rate follows CPU);
    ``identity`` False: without its identity stage (every event keyed by its
    customer id, an anonymous-only one by its anonymous id: the engine
    before identity resolution)."""
    publisher = engine.publisher()
    if not identity:
        publisher.router = None
    started = time.perf_counter()
    cpu = time.process_time()
    if events and isinstance(events[0], str):
        report = publisher.publish_lines(events, "bench")
    else:
        # the path of ``engage publish`` after parsing: batches of BATCH, each
        # appended while the next is encoded
        parsed = cast(list[Touchpoint], events)
        report = publisher.publish_parsed(((n, e, "", 0) for n, e in enumerate(parsed, 1)), "bench")
    assert report.accepted == len(events), report
    return len(events) / (time.perf_counter() - started), time.process_time() - cpu


def _process(dsn: str, tmp: str, partitions: int, batch_size: int | None) -> float:
    with Engine.open(Settings(dsn, Path(tmp), None, partitions)) as engine:
        processor = engine.processor(batch_size)
        started = time.perf_counter()
        stats = processor.run(until_idle=True)
        return stats.events / (time.perf_counter() - started)


def _facts(dsn: str) -> dict[str, int]:
    with connect(dsn) as conn:
        records = conn.execute(
            "SELECT count(*) FROM touchpoints WHERE type = '~identity'"
        ).fetchone()
        persons = conn.execute("SELECT count(*) FROM identity_persons").fetchone()
        profiles = conn.execute("SELECT count(*) FROM profiles").fetchone()
    return {
        "identity_records_on_log": int(records[0]) if records else 0,
        "persons_with_links": int(persons[0]) if persons else 0,
        "profiles": int(profiles[0]) if profiles else 0,
    }


def _paired(over: list[float], under: list[float]) -> float:
    """Median over rounds of ``over / under``, both from the same round."""
    return round(statistics.median([a / b for a, b in zip(over, under, strict=True)]), 3)


def run_shape(admin: str, tmp: str, shape: str, args: argparse.Namespace) -> dict[str, object]:
    lines, _ = history(shape, args.events)
    parsed = [parse_line(line, n) for n, line in enumerate(lines, 1)]
    plain = [e for e in parsed if isinstance(e, Touchpoint)]
    mixed = with_identities(plain)
    inputs: tuple[tuple[str, list[Touchpoint] | list[str]], ...]
    if args.from_lines:
        mixed_lines = with_identities_lines(lines)
        inputs = (("plain", lines), ("identity", mixed_lines), ("off", mixed_lines))
    else:
        inputs = (("plain", plain), ("identity", mixed), ("off", mixed))
    del lines, parsed
    # the inputs live for the whole run: out of the collector's sight, as
    # ``history`` does with its lines, so a full collection does not rescan
    # them inside whichever run happens to allocate more
    gc.freeze()
    names = {"plain": database_name(), "identity": database_name(), "off": database_name()}
    dsns = {label: create_database(admin, name) for label, name in names.items()}
    try:
        publish: dict[str, float] = {}
        publish_rounds: dict[str, list[float]] = {"plain": [], "identity": [], "off": []}
        publish_cpu: dict[str, list[float]] = {"plain": [], "identity": [], "off": []}
        for round_no in range(args.rounds):  # alternating, each into a fresh database
            for label, events in inputs:
                name = names[label] if not round_no else database_name()
                dsn = dsns[label] if not round_no else create_database(admin, name)
                try:
                    migrate(dsn, args.partitions)
                    with Engine.open(Settings(dsn, Path(tmp), None, args.partitions)) as engine:
                        rate, cpu = _publish(engine, events, identity=label != "off")
                    publish[label] = max(publish.get(label, 0.0), rate)
                    publish_rounds[label].append(rate)
                    publish_cpu[label].append(cpu)
                finally:
                    if round_no:  # the first round's logs are the ones processed
                        drop_database(admin, name)
        rates: dict[str, float] = {}
        process_rounds: dict[str, list[float]] = {"plain": [], "identity": [], "off": []}
        for round_no in range(args.rounds):
            for label in ("plain", "identity", "off"):
                if round_no:
                    _restart(dsns[label])
                rate = _process(dsns[label], tmp, args.partitions, args.batch_size)
                rates[label] = max(rates.get(label, 0.0), rate)
                process_rounds[label].append(rate)
        return {
            "shape": shape,
            "events": len(plain),
            "with_anonymous_id": sum(e.anonymous_id is not None for e in mixed),
            "linking": sum(
                e.anonymous_id is not None and e.anonymous_id != e.customer_id for e in mixed
            ),
            "publish_events_per_s": round(publish["plain"]),
            "publish_events_per_s_identity": round(publish["identity"]),
            "publish_ratio": round(publish["identity"] / publish["plain"], 3),
            "process_events_per_s": round(rates["plain"]),
            "process_events_per_s_identity": round(rates["identity"]),
            "process_ratio": round(rates["identity"] / rates["plain"], 3),
            "publish_events_per_s_mix_unresolved": round(publish["off"]),
            "process_events_per_s_mix_unresolved": round(rates["off"]),
            "publish_ratio_same_input": round(publish["identity"] / publish["off"], 3),
            "process_ratio_same_input": round(rates["identity"] / rates["off"], 3),
            # the ratio within each round (its runs back to back), median over
            # rounds: steadier than best over best when the machine drifts
            "publish_ratio_same_input_paired": _paired(
                publish_rounds["identity"], publish_rounds["off"]
            ),
            "process_ratio_same_input_paired": _paired(
                process_rounds["identity"], process_rounds["off"]
            ),
            # this process's CPU seconds per publish (median over rounds):
            # publishing with identity is CPU-bound (docs/performance.md,
            # fourth pass), so its ratio is close to the paired rate ratio
            "publish_cpu_s": {k: round(statistics.median(v), 2) for k, v in publish_cpu.items()},
            "publish_cpu_ratio_same_input_paired": _paired(
                publish_cpu["off"], publish_cpu["identity"]
            ),
            "rounds": args.rounds,
            "published_from": "json lines" if args.from_lines else "parsed touchpoints",
            **_facts(dsns["identity"]),
        }
    finally:
        for name in names.values():
            drop_database(admin, name)


def main() -> None:
    parser = shape_parser(__doc__)
    parser.add_argument(
        "--rounds", type=int, default=5, help="best of N, alternating (and the median paired ratio)"
    )
    parser.add_argument(
        "--from-lines",
        action="store_true",
        help="publish from JSON Lines, parsing included (the path of engage publish)",
    )
    run_shapes(parser.parse_args(), run_shape)


if __name__ == "__main__":
    main()
