"""Triggers end to end on real PostgreSQL: outbox, relay, timers, redelivery."""

from __future__ import annotations

import subprocess
import sys

import orjson

from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.log import TOUCHPOINTS
from events.model import TriggerEvent
from events.timefmt import parse_iso
from tests.helpers import event, lines, publish

BUYER = [
    event("p1", "ann", "purchase", "2026-01-10T10:00:00Z", order_id="o1", amount=600.0),
    event("p2", "ann", "purchase", "2026-01-12T10:00:00Z", order_id="o2", amount=500.0),
]


def _stream(engine: Engine) -> list[TriggerEvent]:
    decoded = TriggerCodec().decode_many([r.payload for r in engine.log.find_triggers()])
    assert not any(isinstance(t, CodecError) for t in decoded)
    return [t for t in decoded if not isinstance(t, CodecError)]


def _pending(engine: Engine) -> int:
    relay = engine.relay()
    try:
        return relay.pending()
    finally:
        relay.close()


def test_crossings_fire_once_and_reach_the_stream(engine: Engine) -> None:
    publish(engine, lines(*BUYER))
    engine.processor().run(until_idle=True)
    fired = sorted((t.rule_id, t.caused_by) for t in _stream(engine))
    assert fired == [
        ("first-purchase-thank-you", ("p1",)),
        ("lifetime-spend-1000", ("p2",)),
        ("monthly-spend-500", ("p1",)),
    ]
    publish(
        engine,
        lines(event("p3", "ann", "purchase", "2026-01-13T10:00:00Z", order_id="o3", amount=900.0)),
    )
    engine.processor().run(until_idle=True)
    assert len(_stream(engine)) == 3, "no second crossing, no second thank-you"
    assert _pending(engine) == 0


def test_a_crash_between_outbox_and_publish_neither_loses_nor_doubles(engine: Engine) -> None:
    publish(engine, lines(*BUYER))
    # a processor that leaves triggers to the relay (as in Kafka mode) commits
    # profiles, offsets and outbox; then "crashes" before relaying
    processor = engine.processor(relay=False)
    processor.run(until_idle=True)
    assert _stream(engine) == [] and _pending(engine) == 3
    # a relay that dies after appending but before marking the outbox
    relay = engine.relay()
    relay.run_once(mark=False)
    assert len(_stream(engine)) == 3 and _pending(engine) == 3
    # the restarted relay re-sends; the stream drops the repeats by trigger_id
    assert relay.drain() == 3
    relay.close()
    assert _pending(engine) == 0
    ids = [t.trigger_id for t in _stream(engine)]
    assert len(ids) == 3 and len(set(ids)) == 3


def _rewind(engine: Engine) -> None:
    """Rewind the offsets and the profiles, as a redelivery after a lost commit would."""
    from engage.database import connect

    with engine.store.transaction() as tx:
        tx.lock_offsets("engage-processor", TOUCHPOINTS, range(engine.partitions))
        tx.save_offsets("engage-processor", TOUCHPOINTS, dict.fromkeys(range(engine.partitions), 0))
    with connect(engine.dsn) as conn:
        conn.execute("DELETE FROM profiles")
        conn.execute("DELETE FROM timers")


def test_the_embedded_processor_publishes_triggers_in_its_batch_transaction(
    engine: Engine,
) -> None:
    """Where the log is in the store's database, the triggers reach the stream
    with the profiles that fired them: nothing is left for the relay."""
    publish(engine, lines(*BUYER))
    engine.processor().run(until_idle=True)
    assert len(_stream(engine)) == 3 and _pending(engine) == 0
    relay = engine.relay()
    assert relay.drain() == 0
    relay.close()
    # a redelivered batch (offsets and profiles rewound) appends no second copy
    _rewind(engine)
    engine.processor().run(until_idle=True)
    ids = [t.trigger_id for t in _stream(engine)]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_redelivery_of_a_whole_batch_fires_nothing_new(engine: Engine) -> None:
    publish(engine, lines(*BUYER))
    engine.processor().run(until_idle=True)
    first = {t.trigger_id for t in _stream(engine)}
    _rewind(engine)
    engine.processor().run(until_idle=True)
    assert {t.trigger_id for t in _stream(engine)} == first


def test_inactivity_timer_fires_at_its_instant_with_no_further_event(engine: Engine) -> None:
    publish(engine, lines(BUYER[0]))
    engine.processor().run(until_idle=True)
    assert "inactive-30d" not in {t.rule_id for t in _stream(engine)}
    engine.processor().run(until_idle=True, now=parse_iso("2026-02-09T09:00:00Z"))
    assert "inactive-30d" not in {t.rule_id for t in _stream(engine)}, "not due yet"
    engine.processor().run(until_idle=True, now=parse_iso("2026-02-20T00:00:00Z"))
    inactive = [t for t in _stream(engine) if t.rule_id == "inactive-30d"]
    assert len(inactive) == 1
    assert inactive[0].fired_at == parse_iso("2026-02-09T10:00:00Z")  # last_seen + 30 days
    assert inactive[0].caused_by == ("p1",)
    engine.processor().run(until_idle=True, now=parse_iso("2026-03-20T00:00:00Z"))
    assert len([t for t in _stream(engine) if t.rule_id == "inactive-30d"]) == 1


def test_a_new_touchpoint_before_due_rearms_the_timer(engine: Engine) -> None:
    publish(
        engine, lines(BUYER[0], event("v1", "ann", "web_visit", "2026-02-01T10:00:00Z", url="u"))
    )
    engine.processor().run(until_idle=True, now=parse_iso("2026-02-20T00:00:00Z"))
    assert "inactive-30d" not in {t.rule_id for t in _stream(engine)}
    engine.processor().run(until_idle=True, now=parse_iso("2026-03-04T00:00:00Z"))
    inactive = [t for t in _stream(engine) if t.rule_id == "inactive-30d"]
    assert [t.fired_at for t in inactive] == [parse_iso("2026-03-03T10:00:00Z")]


def test_unsubscribed_customers_get_service_triggers_only(engine: Engine) -> None:
    publish(
        engine,
        lines(
            event("u0", "bob", "unsubscribed", "2026-01-01T10:00:00Z"),
            event("u1", "bob", "purchase", "2026-01-02T10:00:00Z", order_id="o1", amount=1500.0),
            event("u2", "bob", "support_case_opened", "2026-01-03T10:00:00Z", case_id="k1"),
            event("u3", "bob", "support_case_closed", "2026-01-04T10:00:00Z", case_id="k1"),
            event("u4", "bob", "survey_response", "2026-01-05T10:00:00Z", survey="nps", score=3),
        ),
    )
    engine.processor().run(until_idle=True, now=parse_iso("2026-06-01T00:00:00Z"))
    assert sorted(t.rule_id for t in _stream(engine)) == [
        "detractor-follow-up",
        "feedback-after-support",
    ]


def test_triggers_json_matches_the_contract(engine: Engine, cli_env: dict[str, str]) -> None:
    publish(engine, lines(*BUYER))
    engine.processor().run(until_idle=True)
    result = subprocess.run(
        [sys.executable, "-m", "engage.cli", "triggers", "--json", "--rule", "lifetime-spend-1000"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {
        "trigger_id",
        "rule_id",
        "rule_version",
        "kind",
        "customer_id",
        "fired_at",
        "caused_by",
        "details",
        "arm",
    }
    assert row["rule_id"] == "lifetime-spend-1000" and row["kind"] == "spend_threshold"
    assert row["customer_id"] == "ann" and row["caused_by"] == ["p2"]
    assert row["fired_at"] == "2026-01-12T10:00:00Z" and isinstance(row["details"], dict)
    listed = subprocess.run(
        [sys.executable, "-m", "engage.cli", "rules", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    fired = {r["id"]: r["fired"] for r in map(orjson.loads, listed.stdout.splitlines())}
    assert fired["lifetime-spend-1000"] == 1 and fired["win-back-90d"] == 0
