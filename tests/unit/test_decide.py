"""``decide``: any cut of a history into batches gives the same result as one
record at a time, on several partitions, with clock records among the events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import DAY, ClockRecord, Micros, Touchpoint, TriggerEvent
from events.partitioning import partition_for
from projections.profile import Profile
from rules.decide import Record, advance, decide
from rules.timer_queue import TimerQueue
from tests.unit.test_rules_properties import RULES, histories
from tests.unit.test_rules_support import T0, History

PARTITIONS = 3


class Runner:
    """A writer in memory: what the pipeline keeps between batches."""

    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}
        self.queue = TimerQueue()
        self.clocks: dict[int, Micros] = {}
        self.triggers: list[TriggerEvent] = []
        self.timers: dict[str, dict[str, Micros]] = {}

    def batch(self, batch: list[tuple[int, Record]]) -> None:
        due: list[tuple[str, int]] = []
        for partition, clock in advance(batch, self.clocks).items():
            due.extend((c, partition) for c in self.queue.pop_due(partition, clock))
        outcome = decide(batch, self.profiles, due, self.clocks, RULES)
        self.profiles.update(outcome.profiles)
        self.clocks.update(outcome.clocks)
        for customer_id, armed in outcome.timers.items():
            self.queue.arm(customer_id, outcome.partition_of[customer_id], armed)
            self.timers[customer_id] = armed
        self.triggers.extend(outcome.triggers)


def _log(events: list[Touchpoint], ticks: list[int]) -> list[tuple[int, Record]]:
    """The events on their partitions, with a clock record after some of them."""
    out: list[tuple[int, Record]] = []
    for i, e in enumerate(events):
        out.append((partition_for(e.customer_id, PARTITIONS), e))
        if i in ticks:
            p = i % PARTITIONS
            out.append((p, ClockRecord(p, e.occurred_at + 45 * DAY)))
    return out


def _run(log: list[tuple[int, Record]], cuts: list[int]) -> Runner:
    runner = Runner()
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
    log = _log(events, ticks)
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
