"""``decide``: any cut of a history into batches gives the same result as one
record at a time, on several partitions, with clock records and model_fitted
records among the events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import (
    DAY,
    ClockRecord,
    Micros,
    ModelFitted,
    Touchpoint,
    TriggerConverted,
    TriggerEvent,
)
from events.partitioning import partition_for
from projections.predictions import Model, ModelParams, p_alive_at, p_alive_crossing
from projections.profile import Profile
from rules.backtest import simulate
from rules.decide import Record, advance, decide
from rules.model import RuleSet
from rules.timer_queue import TimerQueue
from tests.unit.test_rules_properties import RULES, histories
from tests.unit.test_rules_support import T0, History

PARTITIONS = 3
# fast drop-out, so predicted-churn crossings fall inside the histories
PARAMS = {"r": 0.8, "alpha": 6.0, "a": 1.5, "b": 1.2, "p": 6.0, "q": 3.7, "gamma": 15.0}
SLOWER = {**PARAMS, "alpha": 25.0, "a": 0.6}


def fitted(version: int, partition: int, params: dict[str, float] = PARAMS) -> ModelFitted:
    return ModelFitted(version, partition, PARTITIONS, T0, params)


class Runner:
    """A writer in memory: what the pipeline keeps between batches."""

    def __init__(self, rules: RuleSet = RULES) -> None:
        self.rules = rules
        self.conversions: list[TriggerConverted] = []
        self.profiles: dict[str, Profile] = {}
        self.queue = TimerQueue()
        self.clocks: dict[int, Micros] = {}
        self.triggers: list[TriggerEvent] = []
        self.timers: dict[str, dict[str, Micros]] = {}
        self.models: dict[int, Model] = {}

    def batch(self, batch: list[tuple[int, Record]]) -> None:
        """As the pipeline does: pop the due customers, and with a model_fitted
        record list every customer of its partition with repeat purchases."""
        due: list[tuple[str, int]] = []
        for partition, clock in advance(batch, self.clocks).items():
            due.extend((c, partition) for c in self.queue.pop_due(partition, clock))
        refitted = {p for p, r in batch if type(r) is ModelFitted}
        listed = {c for c, _ in due}
        for customer_id, profile in self.profiles.items():
            partition = partition_for(customer_id, PARTITIONS)
            days = profile.purchase_days
            if partition in refitted and customer_id not in listed and days and len(days) > 1:
                due.append((customer_id, partition))
        outcome = decide(batch, self.profiles, due, self.clocks, self.rules, self.models)
        self.profiles.update(outcome.profiles)
        self.clocks.update(outcome.clocks)
        self.models.update(outcome.models)
        for customer_id, armed in outcome.timers.items():
            self.queue.arm(customer_id, outcome.partition_of[customer_id], armed)
            self.timers[customer_id] = armed
        self.triggers.extend(outcome.triggers)
        self.conversions.extend(outcome.conversions)


def _log(
    events: list[Touchpoint],
    ticks: list[int],
    fits: list[int] = (),  # type: ignore[assignment]
) -> list[tuple[int, Record]]:
    """The events on their partitions, with a clock record after some of them
    and a model_fitted record (on every partition) after others."""
    out: list[tuple[int, Record]] = []
    for i, e in enumerate(events):
        out.append((partition_for(e.customer_id, PARTITIONS), e))
        if i in ticks:
            p = i % PARTITIONS
            out.append((p, ClockRecord(p, e.occurred_at + 45 * DAY)))
        if i in fits:
            version = 1 + fits.index(i)
            params = PARAMS if version % 2 else SLOWER
            out.extend((p, fitted(version, p, params)) for p in range(PARTITIONS))
    return out


def _run(log: list[tuple[int, Record]], cuts: list[int], rules: RuleSet = RULES) -> Runner:
    runner = Runner(rules)
    start = 0
    for cut in [*sorted(set(cuts)), len(log)]:
        if cut > start:
            runner.batch(log[start:cut])
            start = cut
    return runner


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_any_cut_into_batches_equals_one_record_at_a_time(
    events: list[Touchpoint], data: st.DataObject
) -> None:
    ticks = data.draw(st.lists(st.integers(0, len(events)), max_size=4))
    fits = data.draw(st.lists(st.integers(-1, len(events)), max_size=2, unique=True))
    log = _log(events, ticks, fits)
    if -1 in fits:  # a model before anything else
        log = [(p, fitted(9, p)) for p in range(PARTITIONS)] + log
    one_by_one = _run(log, list(range(len(log))))
    cuts = data.draw(st.lists(st.integers(0, len(log)), max_size=6))
    batched = _run(log, cuts)
    assert batched.profiles == one_by_one.profiles
    assert batched.clocks == one_by_one.clocks
    assert batched.timers == one_by_one.timers
    # the order within a batch differs (grouped by customer); the set may not
    assert sorted(t.trigger_id for t in batched.triggers) == sorted(
        t.trigger_id for t in one_by_one.triggers
    )
    assert len(batched.triggers) == len({t.trigger_id for t in batched.triggers})
    assert batched.models == one_by_one.models


def test_a_clock_record_fires_a_timer_with_no_traffic() -> None:
    """Nothing from the customer, nothing on the partition: only the clock moves."""
    runner = Runner()
    purchase = History("c1").purchase(0, 20.0)
    p = partition_for("c1", PARTITIONS)
    runner.batch([(p, purchase)])
    fired = {t.rule_id for t in runner.triggers}
    assert fired == {"first-purchase-thank-you"}
    assert runner.timers["c1"]["inactive-30d"] == purchase.occurred_at + 30 * DAY
    # a clock record on another partition changes nothing for c1
    other = (p + 1) % PARTITIONS
    runner.batch([(other, ClockRecord(other, T0 + 40 * DAY))])
    assert {t.rule_id for t in runner.triggers} == {"first-purchase-thank-you"}
    runner.batch([(p, ClockRecord(p, T0 + 31 * DAY))])
    inactive = [t for t in runner.triggers if t.rule_id == "inactive-30d"]
    assert len(inactive) == 1
    assert inactive[0].fired_at == purchase.occurred_at + 30 * DAY
    assert runner.clocks[p] == T0 + 31 * DAY
    # the clock never goes back, and the fired timer does not fire again
    runner.batch([(p, ClockRecord(p, T0 + 10 * DAY))])
    assert runner.clocks[p] == T0 + 31 * DAY
    assert len([t for t in runner.triggers if t.rule_id == "inactive-30d"]) == 1


def test_predicted_churn_fires_at_the_exact_crossing_instant() -> None:
    """Two purchase days, a fit, then silence: the timer is armed at the
    closed-form crossing and fires there, with p_alive just below 0.3."""
    runner = Runner()
    c = History("c1")
    p = partition_for("c1", PARTITIONS)
    runner.batch([(p, c.purchase(0, 40.0)), (p, c.purchase(5, 60.0))])
    assert "predicted-churn" not in runner.timers["c1"]  # no model yet
    runner.batch([(q, fitted(1, q)) for q in range(PARTITIONS)])
    last = c.events[-1].occurred_at
    crossing = p_alive_crossing(1, c.events[0].occurred_at, last, runner.models[p].params, 0.3)
    assert crossing is not None and crossing > last
    assert runner.timers["c1"]["predicted-churn"] == crossing
    runner.batch([(p, ClockRecord(p, crossing))])  # due strictly before the clock: not yet
    assert not [t for t in runner.triggers if t.rule_id == "predicted-churn"]
    runner.batch([(p, ClockRecord(p, crossing + 1))])
    fired = [t for t in runner.triggers if t.rule_id == "predicted-churn"]
    assert [t.fired_at for t in fired] == [crossing]
    first = c.events[0].occurred_at
    params = runner.models[p].params
    assert (
        p_alive_at(1, first, last, crossing, params)
        < 0.3
        <= p_alive_at(1, first, last, crossing - 1, params)
    )
    assert fired[0].details["model_version"] == 1
    assert fired[0].caused_by == (c.events[-1].event_id,)
    # once per quiet spell: nothing more until a new purchase
    runner.batch([(p, ClockRecord(p, crossing + 400 * DAY))])
    assert len([t for t in runner.triggers if t.rule_id == "predicted-churn"]) == 1


def test_a_refit_re_arms_and_a_crossing_before_the_model_never_fires() -> None:
    runner = Runner()
    c = History("c1")
    p = partition_for("c1", PARTITIONS)
    runner.batch([(p, c.purchase(0, 40.0)), (p, c.purchase(5, 60.0))])
    last = c.events[-1].occurred_at
    # the clock is long past any crossing when the model arrives: nothing is armed
    runner.batch([(p, ClockRecord(p, last + 3000 * DAY))])
    runner.batch([(q, fitted(1, q)) for q in range(PARTITIONS)])
    assert "predicted-churn" not in runner.timers["c1"]
    assert runner.models[p].adopted_at == last + 3000 * DAY

    other = History("c2")
    q = partition_for("c2", PARTITIONS)
    runner.batch([(q, other.purchase(0, 10.0)), (q, other.purchase(2, 10.0))])
    before = runner.timers["c2"]["predicted-churn"]
    runner.batch([(x, fitted(2, x, SLOWER)) for x in range(PARTITIONS)])
    after = runner.timers["c2"]["predicted-churn"]
    slower = runner.models[q].params
    assert after != before
    assert after == p_alive_crossing(
        1, other.events[0].occurred_at, other.events[-1].occurred_at, slower, 0.3
    )


def test_a_backtest_adopts_a_model_once_the_history_passes_its_as_of() -> None:
    """The harness (``engage backtest``): no predicted-churn before the model's
    as_of, the exact crossing after it, and the same instant as the pipeline."""
    c = History("c1")
    c.purchase(0, 40.0)
    c.purchase(5, 60.0)
    c.visit(300)  # the history goes on long past the crossing
    model = ModelFitted(1, 0, 1, c.events[1].occurred_at + DAY, PARAMS)
    without = simulate(RULES, c.events, None).triggers
    assert not [t for t in without if t.rule_id == "predicted-churn"]
    fired = simulate(RULES, c.events, None, models=[model]).triggers
    churn = [t for t in fired if t.rule_id == "predicted-churn"]
    first, last = c.events[0].occurred_at, c.events[1].occurred_at
    params = Model(1, ModelParams.from_json({"time_unit": "days", **PARAMS})).params
    assert [t.fired_at for t in churn] == [p_alive_crossing(1, first, last, params, 0.3)]
