"""Benchmark: publish, process (decode, fold, rules, upsert) and profile lookups.

Processing runs twice on the same published log (a template copy of the
database): with the default rule pack, and with rules off as the baseline.

    python bench/pipeline.py --events 1000000 [--shapes short,long] [--predictions] [--goals]

With ``--predictions`` it also fits the churn and lifetime-value model on the
generated history (as of its last event), publishes the same history again
into a database whose log starts with the ``model_fitted`` records, and
processes that with the default rules: the predicted-churn timer is then
solved and re-armed at every repeat purchase from the first event on. The
report gives its rate against the rules-on run without a model
(``predictions_cost_ratio``, best of ``--rounds`` alternating runs each).

With ``--goals`` it also processes the same log with the default pack minus
its goals and holdouts (``goals_off``), alternating with the default pack
(goals on: open goals kept in the profiles, conversions decided and written,
10% of win-backs held out), best of ``--rounds`` each; ``goals_cost_ratio`` is
the rate with goals over the rate without (the closed loop's target: >= 0.9).

Each shape (``engage.synthetic.HistorySpec.shape``) runs in turn: ``short`` is
the demo's 180-day history on every channel; ``long`` is 18 months of a
purchase-heavy retail history where timers fire about once per purchase.

Prints one JSON object. Runs against a fresh database: on the server named by
ENGAGE_DATABASE_URL when set, otherwise on a throwaway embedded PostgreSQL
server. Timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import database_name, run_shapes, shape_parser
from consumers.parallel import WorkerJob, run_parallel, shares
from consumers.purchase_history import purchase_stats
from engage.config import Settings
from engage.database import connect, create_database, drop_database, migrate
from engage.runtime import Engine
from engage.synthetic import DEFAULT_START, LONG_START, HistorySpec, generate_lines
from events.control import model_entries
from events.log import TOUCHPOINTS
from projections.customer360 import customer_360
from projections.model_fit import Customers, fit
from projections.predictions import Model
from rules import default_rules
from rules.model import RuleSet


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SHAPES = {
    # name: (days, events per customer the generator gives, about)
    "short": (180, 40),
    "long": (540, 9),
}


def history(shape: str, events: int) -> tuple[list[str], float]:
    days, per_customer = SHAPES[shape]
    start = LONG_START if shape == "long" else DEFAULT_START
    spec = HistorySpec(
        customers=max(10, events // per_customer), days=days, start=start, seed=1, shape=shape
    )
    gc.disable()
    started = time.perf_counter()
    lines = []
    for line in generate_lines(spec):
        lines.append(line)
        if len(lines) >= events:
            break
    generate_s = time.perf_counter() - started
    gc.enable()
    gc.freeze()
    return lines, generate_s


def run_shape(admin: str, tmp: str, shape: str, args: argparse.Namespace) -> dict[str, object]:
    lines, generate_s = history(shape, args.events)
    name = database_name()
    dsn = create_database(admin, name)
    names = [name]
    try:
        migrate(dsn, args.partitions)
        settings = Settings(dsn, Path(tmp), None, args.partitions)
        with Engine.open(settings) as engine:
            started = time.perf_counter()
            report = engine.publisher().publish_lines(lines, "bench")
            publish_s = time.perf_counter() - started
            fitted = _fit(engine) if args.predictions else None
        predictions_dsn = None
        if fitted is not None:
            names.append(name + "_predictions")
            predictions_dsn = create_database(admin, name + "_predictions")
            migrate(predictions_dsn, args.partitions)
            with Engine.open(Settings(predictions_dsn, Path(tmp), None, args.partitions)) as pe:
                pe.log.append(TOUCHPOINTS, model_entries(1, fitted[0], fitted[1], args.partitions))
                pe.publisher().publish_lines(lines, "bench")
        del lines
        # the same published log, twice: rules off here, rules on in a copy
        copies = {}
        for suffix in ("_rules", "_parallel", *(("_nogoals",) if args.goals else ())):
            with connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name + suffix), sql.Identifier(name)
                    )
                )
            names.append(name + suffix)
            copies[suffix] = psycopg.conninfo.make_conninfo(admin, dbname=name + suffix)
        rules_dsn = copies["_rules"]

        # rules on, partition-parallel: the path `engage run --until-idle` takes
        par_settings = Settings(copies["_parallel"], Path(tmp), None, args.partitions)
        jobs = [
            WorkerJob(partial(Engine.open, par_settings), share, None, args.batch_size)
            for share in shares(args.partitions, args.workers)
        ]
        started = time.perf_counter()
        par_stats = run_parallel(jobs)
        with Engine.open(par_settings) as engine:
            engine.processor(args.batch_size).run(until_idle=True)
        parallel_rate = par_stats.events / (time.perf_counter() - started)

        runs: dict[str, float] = {}
        triggers = 0
        timings: list[float] = []
        ids: list[str] = []
        plan: list[tuple[str, str, bool]] = [("off", dsn, False), ("on", rules_dsn, True)]
        extra: dict[str, object] = {}
        alternates = [("on", rules_dsn, True)]
        if predictions_dsn is not None:
            alternates.append(("predictions", predictions_dsn, True))
        if args.goals:
            alternates.append(("goals_off", copies["_nogoals"], True))
        if len(alternates) > 1:
            # alternate, so drifting load on a shared machine hits all alike
            plan = [plan[0]] + [run for _ in range(args.rounds) for run in alternates]
        for label, target, with_rules in plan:
            ruleset = without_goals() if label == "goals_off" else None
            with Engine.open(Settings(target, Path(tmp), None, args.partitions), ruleset) as engine:
                if label in runs:  # a later round: back to the start of the log
                    _restart(target)
                processor = engine.processor(args.batch_size, with_rules=with_rules)
                started = time.perf_counter()
                stats = processor.run(until_idle=True)
                runs[label] = max(
                    runs.get(label, 0.0), stats.events / (time.perf_counter() - started)
                )
                if label == "on":
                    triggers = max(triggers, stats.triggers)
                if label == "predictions" and not extra:
                    extra = _prediction_facts(engine, stats.triggers)
                if label != "on" or timings:
                    continue
                clock = engine.store.clock("engage-processor") or 0
                ids = engine.store.sample_ids(10**9)
                rng = random.Random(3)
                for _ in range(args.lookups):
                    customer_id = rng.choice(ids)
                    t0 = time.perf_counter()
                    found = engine.store.get(customer_id)
                    assert found is not None
                    customer_360(found, clock)
                    timings.append((time.perf_counter() - t0) * 1000)
        if predictions_dsn is not None and fitted is not None:
            extra.update(_refit(predictions_dsn, Path(tmp), args, fitted))
        if "goals_off" in runs:
            extra.update(_goal_facts(rules_dsn))
            extra["process_events_per_s_goals_off"] = round(runs["goals_off"])
            extra["goals_cost_ratio"] = round(runs["on"] / runs["goals_off"], 3)
            extra["rounds"] = args.rounds
        if "predictions" in runs:
            extra["process_events_per_s_predictions"] = round(runs["predictions"])
            extra["predictions_cost_ratio"] = round(runs["predictions"] / runs["on"], 3)
            extra["rounds"] = args.rounds
        return {
            "shape": shape,
            "events": report.accepted,
            "customers": len(ids),
            "partitions": args.partitions,
            "generate_events_per_s": round(report.lines / generate_s),
            "publish_events_per_s": round(report.accepted / publish_s),
            "process_events_per_s": round(runs["on"]),
            "process_events_per_s_rules_off": round(runs["off"]),
            "rules_cost_ratio": round(runs["on"] / runs["off"], 3),
            "process_events_per_s_parallel": round(parallel_rate),
            "workers": args.workers,
            "parallel_speedup": round(parallel_rate / runs["on"], 2),
            "triggers_fired": triggers,
            "triggers_per_event": round(triggers / max(1, report.accepted), 3),
            "lookup_p50_ms": round(_percentile(timings, 0.50), 3),
            "lookup_p99_ms": round(_percentile(timings, 0.99), 3),
            **extra,
        }
    finally:
        for db in names:
            drop_database(admin, db)


def without_goals() -> RuleSet:
    """The default pack with no goal and no holdout: the closed loop's baseline."""
    pack = default_rules()
    stripped = tuple(replace(r, goal=None, holdout=0.0) for r in pack.rules)
    return RuleSet(stripped, pack.cap, pack.source)


def _goal_facts(dsn: str) -> dict[str, object]:
    """What the goals-on run decided: conversions and held-out triggers."""
    with connect(dsn) as conn:
        conversions = conn.execute("SELECT count(*) FROM trigger_conversions").fetchone()
        control = conn.execute(
            "SELECT count(*) FROM trigger_outbox WHERE arm = 'control'"
        ).fetchone()
    return {
        "conversions": int(conversions[0]) if conversions else 0,
        "control_triggers": int(control[0]) if control else 0,
    }


def _fit(engine: Engine) -> tuple[dict[str, float], int]:
    """The model's parameters fitted on the whole published history, as of its
    last event (customers first seen at that instant left out: T would be 0)."""
    stats = purchase_stats(engine.log, TOUCHPOINTS, engine.codec, [2**62])[0]
    as_of = max(s.last_at for s in stats.values())
    customers = Customers.from_stats([s for s in stats.values() if s.first_at < as_of], as_of)
    params = fit(customers).params.to_json()
    del params["time_unit"]
    return params, as_of


def _restart(dsn: str) -> None:
    """Back to an empty projection over the same log, for another round."""
    with connect(dsn) as conn:
        conn.execute(
            "TRUNCATE consumer_offsets, partition_writers, processor_clock, profiles, timers,"
            " kpi_flows, kpi_active, kpi_stage_changes, kpi_triggers, trigger_outbox, trigger_log"
        )
        conn.execute("UPDATE log_partitions SET head = 0 WHERE stream = 'triggers'")
        conn.commit()


def _refit(
    dsn: str, tmp: Path, args: argparse.Namespace, fitted: tuple[dict[str, float], int]
) -> dict[str, object]:
    """A second fit on the processed log: the batch that reads it re-arms every
    customer with repeat purchases (one query, their profiles, their timers)."""
    params, as_of = fitted
    with Engine.open(Settings(dsn, tmp, None, args.partitions)) as engine:
        with engine.store.transaction() as tx:
            rearmed = len(tx.repeat_buyers())
        engine.log.append(
            TOUCHPOINTS,
            model_entries(2, {**params, "alpha": params["alpha"] * 1.1}, as_of, args.partitions),
        )
        started = time.perf_counter()
        engine.processor(args.batch_size).run(until_idle=True)
        seconds = time.perf_counter() - started
    return {"refit_customers_rearmed": rearmed, "refit_seconds": round(seconds, 2)}


def _prediction_facts(engine: Engine, triggers: int) -> dict[str, object]:
    """What the predictions run decided and what a lookup with predictions costs."""
    with connect(engine.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE rule_id = 'predicted-churn'), count(*) FROM timers"
        ).fetchone()
        fired = conn.execute(
            "SELECT count(*) FROM trigger_outbox WHERE rule_id = 'predicted-churn'"
        ).fetchone()
    model: Model | None = engine.store.model("engage-processor")
    assert model is not None and row is not None and fired is not None
    clock = engine.store.clock("engage-processor") or 0
    ids = engine.store.sample_ids(10**9)
    rng = random.Random(3)
    timings: list[float] = []
    for _ in range(2_000):
        customer_id = rng.choice(ids)
        t0 = time.perf_counter()
        found = engine.store.get(customer_id)
        assert found is not None
        customer_360(found, clock, model)
        timings.append((time.perf_counter() - t0) * 1000)
    return {
        "model_alpha_days": round(model.params.alpha, 3),
        "triggers_fired_predictions": triggers,
        "predicted_churn_fired": int(fired[0]),
        "predicted_churn_armed": int(row[0]),
        "lookup_p99_ms_predictions": round(_percentile(timings, 0.99), 3),
    }


def main() -> None:
    parser = shape_parser(__doc__)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2, help="for the parallel run")
    parser.add_argument(
        "--predictions",
        action="store_true",
        help="also run with a fitted model in effect from the first event",
    )
    parser.add_argument(
        "--goals",
        action="store_true",
        help="also run the default pack without goals and holdouts (the baseline of goals)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="with --predictions or --goals: best of N"
    )
    run_shapes(parser.parse_args(), run_shape)


if __name__ == "__main__":
    main()
