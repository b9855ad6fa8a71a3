"""KPIs on real PostgreSQL: the processor's running deltas equal a recount."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from consumers.pipeline import DEFAULT_CONSUMER
from engage.database import connect
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from events.codec import CodecError
from events.log import TOUCHPOINTS
from events.model import DAY, Touchpoint
from projections.adapters.postgres_kpis import read_facts, read_kpis
from projections.customer360 import lifecycle_stage
from tests.helpers import profiles_by_id
from tests.kpi_oracle import recompute, stage_counts


def parse_day(text: str) -> int:
    return (date.fromisoformat(text) - date(1970, 1, 1)).days


SPEC = HistorySpec(customers=60, days=120, seed=11)


def _log_events(engine: Engine) -> list[Touchpoint]:
    """Every touchpoint in per-partition log order (each customer's own order)."""
    records = engine.log.read(TOUCHPOINTS, dict.fromkeys(range(engine.partitions), 0), 10**9)
    return [
        e
        for e in engine.codec.decode_many([r.payload for r in records])
        if not isinstance(e, CodecError)
    ]


def test_processor_kpis_equal_a_recount(engine: Engine) -> None:
    engine.publisher().publish_lines(generate_lines(SPEC), "kpis")
    engine.processor(batch_size=97).run(until_idle=True)  # many small batches
    with connect(engine.dsn) as conn:
        facts = read_facts(conn, DEFAULT_CONSUMER)
    events = _log_events(engine)
    first = min(e.occurred_at for e in events) // DAY
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    days = list(range(first, clock // DAY + 1, 7))
    flows, active, stages = recompute(events, days)
    assert {(d, c, s): list(v) for d, c, s, v in facts["flows"]} == flows
    assert {(g, p, s): n for g, p, s, n in facts["active"]} == active
    changes = {(d, s): n for d, s, n in facts["stages"]}
    assert stage_counts(changes, days) == stages

    report = read_kpis(engine.dsn, DEFAULT_CONSUMER, "month")
    total = report["total"]
    assert total["business"]["events"] == len(events)
    assert total["business"]["active_customers"] == SPEC.customers
    # customers per stage at the end of the clock's day, against the stored profiles
    instant = (clock // DAY + 1) * DAY - 1
    counted: dict[str, int] = defaultdict(int)
    with engine.store.transaction() as tx:
        for profile in tx.load_profiles(list(profiles_by_id(engine))).values():
            counted[lifecycle_stage(profile, instant)] += 1
    assert {s: n for s, n in total["customers_by_stage"].items() if n} == dict(counted)
    fired = engine.log.trigger_counts()
    assert fired and total["triggers_by_rule"] == fired
    monthly = sum(p["business"]["revenue"] for p in report["periods"])
    assert abs(monthly - total["business"]["revenue"]) < 0.01

    # each week: customers per stage at its end (the clock's day for the last), and
    # active customers as a recount of distinct customers with a touchpoint of their own
    weekly = read_kpis(engine.dsn, DEFAULT_CONSUMER, "week")["periods"]
    ends = [min(parse_day(p["end"]) - 1, clock // DAY) for p in weekly]
    _, _, at_ends = recompute(events, ends)
    for period, end in zip(weekly, ends, strict=True):
        counts = {s: n for s, n in period["customers_by_stage"].items() if n}
        assert counts == at_ends[end], period["period"]
        start = parse_day(period["period"])
        active = {
            e.customer_id
            for e in events
            if start <= e.occurred_at // DAY <= end and e.type != "email_sent"
        }
        assert period["business"]["active_customers"] == len(active), period["period"]
