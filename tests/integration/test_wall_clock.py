"""The wall clock: timers fire with no traffic at all, and a replay given no
``--now`` reproduces them from the clock records on the log."""

from __future__ import annotations

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.processor import Processor
from consumers.replay import replay
from engage.runtime import Engine
from events.clock import is_clock
from events.log import TOUCHPOINTS, read_stream
from events.model import DAY, HOUR, MINUTE, Micros
from events.timefmt import parse_iso
from tests.helpers import event, lines, profiles_by_id, publish

START = parse_iso("2026-03-02T10:00:00Z")


class WallClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: Micros) -> None:
        self.now = now

    def __call__(self) -> Micros:
        return self.now


def _live(engine: Engine, wall: WallClock) -> Processor:
    processor = engine.processor()
    processor.wall = wall  # what Engine.processor(live=True) sets, with the real clock
    processor.clock_step = MINUTE
    return processor


def _triggers(engine: Engine) -> dict[str, tuple[str, int]]:
    from events.codec import TriggerCodec

    out = {}
    for t in TriggerCodec().decode_many([r.payload for r in engine.log.find_triggers()]):
        assert not isinstance(t, Exception)
        out[t.trigger_id] = (t.rule_id, t.fired_at)
    return out


def _clock_records(engine: Engine) -> int:
    return sum(
        1 for chunk in read_stream(engine.log, TOUCHPOINTS) for r in chunk if is_clock(r.payload)
    )


def test_a_quiet_partition_fires_its_inactivity_timer_and_replay_agrees(engine: Engine) -> None:
    purchase = event(
        "p1", "quiet-1", "purchase", "2026-03-02T10:00:00Z", order_id="o1", amount=25.0
    )
    assert publish(engine, lines(purchase)).accepted == 1
    wall = WallClock(START + HOUR)
    processor = _live(engine, wall)
    processor.run(until_idle=True)
    assert {rule for rule, _ in _triggers(engine).values()} == {"first-purchase-thank-you"}
    # caught up: every partition's clock moved to the wall floor by one clock record
    first_records = _clock_records(engine)
    assert first_records == engine.partitions

    # polling again within the clock step writes nothing more
    wall.now += 30 * 1_000_000
    processor.run(until_idle=True)
    assert _clock_records(engine) == first_records

    # 31 quiet days later, with no touchpoint published at all
    wall.now = START + 31 * DAY
    processor.run(until_idle=True)
    fired = _triggers(engine)
    inactive = [at for rule, at in fired.values() if rule == "inactive-30d"]
    assert inactive == [START + 30 * DAY], "the timer fires at its due instant"
    assert _clock_records(engine) == 2 * engine.partitions
    assert engine.store.clock(DEFAULT_CONSUMER) == START + 31 * DAY
    live_profiles = profiles_by_id(engine)
    live_clock = engine.store.clock(DEFAULT_CONSUMER)

    # a replay is given no time at all: the clock records on the log are enough
    result = replay(engine, workers=1)
    assert profiles_by_id(engine) == live_profiles
    assert engine.store.clock(DEFAULT_CONSUMER) == live_clock
    for rule_id, would_fire, fired_live, same_ids in result.rules:
        assert would_fire == fired_live == same_ids, rule_id
    assert _triggers(engine) == fired, "the replay is shadow and fires nothing new"
