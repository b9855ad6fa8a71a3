"""The processor loop and the pipeline on the in-memory log and store.

The whole path (publish, read, decode, decide, commit, clock records) with no
database, so it runs in milliseconds; the same code runs on PostgreSQL in the
integration tests.
"""

from __future__ import annotations

import pytest

from consumers.pipeline import Pipeline
from consumers.processor import Processor
from engage.synthetic import HistorySpec, generate_lines
from events.adapters.memory import MemoryDeadLetters, MemoryLog
from events.codec import TouchpointCodec, TriggerCodec
from events.log import TRIGGERS
from events.model import DAY, Touchpoint
from events.publisher import Publisher
from events.timefmt import parse_iso
from projections.adapters.memory import MemoryProjectionStore
from rules import default_rules
from rules.harness import Harness

PARTITIONS = 4
RULES = default_rules()
SPEC = HistorySpec(customers=60, days=90, seed=5)
NOW = parse_iso("2026-05-01T00:00:00Z")


def _published() -> tuple[MemoryLog, list[Touchpoint]]:
    log = MemoryLog(PARTITIONS)
    codec = TouchpointCodec()
    publisher = Publisher(log, MemoryDeadLetters(), codec)
    report = publisher.publish_lines(generate_lines(SPEC), "test")
    assert report.rejected == 0
    records = [r for p in range(PARTITIONS) for r in log.read("touchpoints", {p: 0}, 10**6)]
    events = [
        e for e in codec.decode_many([r.payload for r in records]) if isinstance(e, Touchpoint)
    ]
    return log, events


def _process(log: MemoryLog, batch_size: int) -> tuple[MemoryProjectionStore, set[str]]:
    store = MemoryProjectionStore(log)
    pipeline = Pipeline(TouchpointCodec(), rules=RULES, publish_to=PARTITIONS)
    Processor(log, store, pipeline, batch_size).run(until_idle=True, now=NOW)
    heads = log.heads(TRIGGERS)
    records = log.read(TRIGGERS, dict.fromkeys(heads, 0), 10**6)
    ids = {t.trigger_id for t in TriggerCodec().decode_many([r.payload for r in records])}  # type: ignore[union-attr]
    return store, ids


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_the_processor_on_memory_equals_the_harness(batch_size: int) -> None:
    log, events = _published()
    store, triggers = _process(log, batch_size)
    # the harness: the same decide, one event at a time, one clock; the
    # per-partition clocks agree with it here because the history is in order
    harness = Harness(RULES)
    harness.run(sorted(events, key=lambda e: e.occurred_at), until=NOW)
    assert store.count() == len(harness.profiles) == SPEC.customers
    for customer_id, profile in harness.profiles.items():
        assert store.get(customer_id) == profile
    assert triggers == {t.trigger_id for t in harness.triggers}
    assert triggers, "the history should fire triggers"
    # every partition's clock was moved to --now by one clock record each
    assert sum(log.heads("touchpoints").values()) == len(events) + PARTITIONS


def test_a_failed_batch_leaves_the_memory_store_untouched() -> None:
    log, _ = _published()
    store = MemoryProjectionStore(log)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction() as tx:
        pipeline = Pipeline(TouchpointCodec(), rules=RULES, publish_to=PARTITIONS)
        positions = tx.lock_offsets(pipeline.consumer, "touchpoints", range(PARTITIONS))
        pipeline.process(tx, log.read("touchpoints", positions, 50), positions)
        raise Boom
    assert store.count() == 0
    assert store.offsets("engage-processor", "touchpoints") == {}
    assert sum(log.heads(TRIGGERS).values()) == 0


def test_clock_records_fire_timers_with_no_traffic() -> None:
    log = MemoryLog(PARTITIONS)
    codec = TouchpointCodec()
    line = (
        '{"event_id": "p1", "customer_id": "c1", "type": "purchase",'
        ' "occurred_at": "2026-03-01T10:00:00Z",'
        ' "properties": {"order_id": "o1", "amount": 20}}'
    )
    Publisher(log, MemoryDeadLetters(), codec).publish_lines([line], "test")
    store = MemoryProjectionStore(log)
    wall = [parse_iso("2026-03-01T11:00:00Z")]
    processor = Processor(
        log,
        store,
        Pipeline(codec, rules=RULES, publish_to=PARTITIONS),
        wall=lambda: wall[0],
    )
    processor.run(until_idle=True)
    assert sum(log.heads(TRIGGERS).values()) == 1  # the thank-you
    wall[0] += 31 * DAY
    processor.run(until_idle=True)
    fired = TriggerCodec().decode_many(
        [r.payload for r in log.read(TRIGGERS, dict.fromkeys(range(PARTITIONS), 0), 100)]
    )
    assert sorted(t.rule_id for t in fired) == ["first-purchase-thank-you", "inactive-30d"]  # type: ignore[union-attr]
