"""Predictions wired into the engine, on real PostgreSQL: a fit goes onto the
log as model_fitted, the processor adopts it there, and a replay adopts it at
the same position, so it rebuilds identical predictions and triggers."""

from __future__ import annotations

from typing import Any

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.replay import replay
from engage.database import connect
from engage.fitting import fit_model
from engage.runtime import Engine
from engage.synthetic import LONG_START, HistorySpec, generate_lines
from events.codec import TriggerCodec
from events.control import without_control
from events.log import TOUCHPOINTS, read_stream
from events.model import DAY, TriggerEvent
from events.timefmt import format_iso
from projections.adapters.postgres_kpis import read_clv_rows
from projections.clv import clv_by_stage
from projections.predictions import p_alive_at, p_alive_crossing, predict, summarise
from projections.queries import customer_view, touchpoints
from tests.helpers import event, lines, profiles_by_id, publish

# in the past, whenever the tests run: ingest refuses events from the future
SPEC = HistorySpec(customers=200, days=400, start=LONG_START, seed=11, shape="long")
LATER = HistorySpec(customers=200, days=460, start=LONG_START, seed=11, shape="long")


def _views(engine: Engine, at: int | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for customer_id in engine.store.sample_ids(10**9):
        view = customer_view(
            engine.stream, engine.store, engine.codec, customer_id, DEFAULT_CONSUMER, at
        )
        if view is not None:  # None: not a customer yet at ``at``
            out[customer_id] = view
    return out


def _triggers(engine: Engine) -> list[TriggerEvent]:
    codec = TriggerCodec()
    return sorted(
        (t for t in codec.decode_many([r.payload for r in engine.log.find_triggers()])),
        key=lambda t: t.trigger_id,  # type: ignore[union-attr]
    )  # type: ignore[return-value]


def _table(engine: Engine, query: str) -> list[tuple[Any, ...]]:
    with engine.store.transaction():
        return sorted(engine.store._conn.execute(query).fetchall())


def test_replay_after_a_fit_gives_identical_predictions_and_triggers(engine: Engine) -> None:
    publish(engine, list(generate_lines(SPEC)))
    processor = engine.processor(batch_size=700)
    processor.run(until_idle=True)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    assert all(v["p_alive"] is None for v in _views(engine).values())  # no model yet

    stored, _ = fit_model(engine, clock)
    # the history goes on after the fit, and the clock runs past many crossings
    publish(engine, list(generate_lines(LATER)))
    processor.run(until_idle=True, now=clock + 120 * DAY)
    model = engine.store.model(DEFAULT_CONSUMER)
    assert model is not None and model.version == stored.version
    assert model.params == stored.params

    live_views = _views(engine)
    live_profiles = profiles_by_id(engine)
    live_timers = _table(engine, "SELECT * FROM timers")
    live_triggers = _triggers(engine)
    churn = [t for t in live_triggers if t.rule_id == "predicted-churn"]
    assert churn, "the history should hold predicted-churn crossings"
    assert {v["churn_risk"] for v in live_views.values()} >= {"low", "high"}
    assert any(r == "predicted-churn" for _, r, _, _ in live_timers)

    # each fired at the exact crossing of the customer's purchases up to then
    for trigger in churn:
        history = touchpoints(engine.stream, engine.codec, trigger.customer_id, trigger.fired_at)
        stats = summarise(
            (e.occurred_at, e.properties["amount"]) for e in history if e.type == "purchase"
        )
        assert stats is not None and stats.x >= 1
        due = p_alive_crossing(stats.x, stats.first_at, stats.last_at, model.params, 0.3)
        assert trigger.fired_at == due
        assert trigger.details["p_alive"] < 0.3
        assert p_alive_at(stats.x, stats.first_at, stats.last_at, due - 1, model.params) >= 0.3
        assert trigger.details["due"] == format_iso(due)

    result = replay(engine, workers=2, batch_size=333)
    assert result.version == 2
    assert engine.store.model(DEFAULT_CONSUMER) == model
    assert profiles_by_id(engine) == live_profiles
    assert _table(engine, "SELECT * FROM timers") == live_timers
    assert _views(engine) == live_views
    assert _triggers(engine) == live_triggers  # shadow: nothing new on the stream
    by_rule = {rule: (replayed, live, same) for rule, replayed, live, same in result.rules}
    assert by_rule["predicted-churn"] == (len(churn), len(churn), len(churn))
    assert all(replayed == live_n == same for replayed, live_n, same in by_rule.values())


def test_a_restarted_processor_keeps_the_model_and_arms_the_exact_crossing(
    engine: Engine,
) -> None:
    publish(engine, list(generate_lines(SPEC)))
    engine.processor().run(until_idle=True)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    stored, _ = fit_model(engine, clock)
    engine.processor().run(until_idle=True)

    # a new process: the model comes from the store, not from memory
    first, last = clock + DAY, clock + 8 * DAY
    publish(
        engine,
        lines(
            event("c1", "cy", "purchase", format_iso(first), order_id="6", amount=10.0),
            event("c2", "cy", "purchase", format_iso(last), order_id="7", amount=12.0),
        ),
    )
    engine.processor().run(until_idle=True)
    due = p_alive_crossing(1, first, last, stored.params, 0.3)
    timers = {r[1]: r[2] for r in _table(engine, "SELECT * FROM timers WHERE customer_id = 'cy'")}
    assert timers["predicted-churn"] == due

    view = customer_view(engine.stream, engine.store, engine.codec, "cy", DEFAULT_CONSUMER)
    now = engine.store.clock(DEFAULT_CONSUMER)
    assert view is not None and now is not None
    assert view["model_version"] == stored.version
    expected = predict(1, first, last, 12.0, now, stored.params)
    assert view["p_alive"] == expected.p_alive
    assert view["expected_purchases_90d"] == round(expected.expected_purchases_90d, 4)
    assert expected.predicted_clv_365d is not None
    assert view["predicted_clv_365d"] == round(expected.predicted_clv_365d, 2)
    assert view["churn_risk"] == expected.churn_risk
    assert view["repeat_purchases"] == 1


def test_as_of_predictions_use_the_history_and_model_of_that_instant(engine: Engine) -> None:
    publish(engine, list(generate_lines(SPEC)))
    engine.processor().run(until_idle=True)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    early = clock - 200 * DAY
    stored, _ = fit_model(engine, early)  # fitted as of an earlier instant
    engine.processor().run(until_idle=True)

    before_fit = _views(engine, early - DAY)
    assert before_fit
    assert all(v["p_alive"] is None and v["churn_risk"] is None for v in before_fit.values())

    at = early + 30 * DAY
    views = _views(engine, at)
    checked = 0
    for customer_id, view in views.items():
        history = touchpoints(engine.stream, engine.codec, customer_id, at)
        stats = summarise(
            (e.occurred_at, e.properties["amount"]) for e in history if e.type == "purchase"
        )
        if stats is None:
            assert view["p_alive"] is None
            continue
        expected = predict(
            stats.x, stats.first_at, stats.last_at, stats.mean_value, at, stored.params
        )
        assert view["as_of"] == format_iso(at)
        assert view["model_version"] == stored.version
        assert view["p_alive"] == expected.p_alive
        assert view["expected_purchases_90d"] == round(expected.expected_purchases_90d, 4)
        assert view["churn_risk"] == expected.churn_risk
        checked += 1
    assert checked > 20


def test_predicted_clv_per_stage_adds_up_the_customer_views(engine: Engine) -> None:
    """``engage kpis``' predicted CLV per stage: the vectorised sum over the
    stored profiles equals the sum of every customer-360's predicted_clv_365d
    per lifecycle_stage, at the same clock with the same model."""
    publish(engine, list(generate_lines(SPEC)))
    engine.processor().run(until_idle=True)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    fit_model(engine, clock)
    engine.processor().run(until_idle=True)
    model = engine.store.model(DEFAULT_CONSUMER)
    assert model is not None
    with connect(engine.dsn) as conn:
        report = clv_by_stage(read_clv_rows(conn), clock, model)
    views = _views(engine)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for view in views.values():
        if view["predicted_clv_365d"] is None:
            continue
        stage = view["lifecycle_stage"]
        sums[stage] = sums.get(stage, 0.0) + view["predicted_clv_365d"]
        counts[stage] = counts.get(stage, 0) + 1
    assert report["model_version"] == model.version
    assert {s: m["customers"] for s, m in report["by_stage"].items()} == counts
    for stage, m in report["by_stage"].items():
        # each view rounds to the cent
        assert abs(m["predicted_clv_365d"] - sums[stage]) <= 0.01 * counts[stage], stage
    assert report["business"]["customers"] == sum(counts.values())


def test_readers_of_touchpoints_skip_control_records(engine: Engine) -> None:
    publish(engine, list(generate_lines(SPEC)))
    engine.processor().run(until_idle=True)
    clock = engine.store.clock(DEFAULT_CONSUMER)
    assert clock is not None
    fit_model(engine, clock)
    engine.processor().run(until_idle=True, now=clock + 10 * DAY)
    everything = [r for chunk in read_stream(engine.log, TOUCHPOINTS) for r in chunk]
    kept = without_control(everything)
    controls = len(everything) - len(kept)
    assert controls >= 2 * engine.partitions  # a model_fitted and a clock record on each
    decoded = engine.codec.decode_many([r.payload for r in kept])
    assert not [d for d in decoded if not hasattr(d, "event_id")]
