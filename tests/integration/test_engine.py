"""The engine end to end on real PostgreSQL: publish, process, read back."""

from __future__ import annotations

import orjson
import pytest

from engage.runtime import Engine
from events.log import TOUCHPOINTS, Entry
from events.timefmt import parse_iso
from projections.customer360 import customer_360
from tests.helpers import event, lines, profiles_by_id, publish, view

GOOD = [
    event("e1", "ann", "identify", "2026-01-01T09:00:00Z", email="ann@example.com", name="Ann"),
    event("e2", "ann", "email_sent", "2026-01-02T09:00:00Z", campaign_id="cmp1"),
    event("e3", "ann", "email_opened", "2026-01-02T10:00:00+01:00", campaign_id="cmp1"),
    event("e4", "ann", "email_clicked", "2026-01-02T09:30:00Z", campaign_id="cmp1", url="u"),
    event("e5", "ann", "purchase", "2026-01-03T12:00:00Z", order_id="o1", amount=120.0),
    event("e6", "ann", "purchase", "2026-01-05T12:00:00Z", order_id="o2", amount=80.0),
    event("e7", "ann", "refund", "2026-01-06T12:00:00Z", order_id="o2", amount=30.0),
    event("e8", "ann", "survey_response", "2026-01-07T12:00:00Z", survey="nps", score=9),
    event("e9", "ann", "support_case_opened", "2026-01-08T12:00:00Z", case_id="k1"),
    event("e10", "ann", "unsubscribed", "2026-01-09T12:00:00Z"),
    event("e11", "bob", "web_visit", "2026-01-04T12:00:00Z", url="https://shop.test/"),
]

BAD = [
    ("{not json", "(line)", "not valid JSON"),
    (
        '{"customer_id": "x", "type": "web_visit", "occurred_at": "2026-01-01T00:00:00Z"}',
        "event_id",
        "missing",
    ),
    (
        orjson.dumps(event("b3", "x", "page_view", "2026-01-01T00:00:00Z")).decode(),
        "type",
        "unknown type",
    ),
    (
        orjson.dumps(event("b4", "x", "web_visit", "2026-02-30T00:00:00Z", url="u")).decode(),
        "occurred_at",
        "not an ISO 8601",
    ),
    (
        orjson.dumps(event("b5", "x", "web_visit", "2026-01-01T00:00:00", url="u")).decode(),
        "occurred_at",
        "no time zone",
    ),
    (
        orjson.dumps(
            event("b6", "x", "purchase", "2026-01-01T00:00:00Z", order_id="o", amount=-1)
        ).decode(),
        "properties.amount",
        "0 or more",
    ),
    (
        orjson.dumps(
            event("b7", "x", "purchase", "2026-01-01T00:00:00Z", order_id="o", amount="12")
        ).decode(),
        "properties.amount",
        "must be a number",
    ),
    (
        orjson.dumps(
            event("b8", "x", "survey_response", "2026-01-01T00:00:00Z", survey="nps", score=11)
        ).decode(),
        "properties.score",
        "0 to 10",
    ),
]


def test_bad_lines_are_dead_lettered_and_valid_neighbours_go_through(engine: Engine) -> None:
    mixed: list[str] = []
    good = lines(*GOOD)
    for i, good_line in enumerate(good):
        mixed.append(good_line)
        if i < len(BAD):
            mixed.append(BAD[i][0])
    report = publish(engine, mixed, "mixed.jsonl")
    assert (report.accepted, report.duplicates, report.rejected) == (len(GOOD), 0, len(BAD))
    by_raw = {r.raw: r for r in report.rejections}
    for raw, field, reason in BAD:
        rejection = by_raw[raw]
        assert rejection.field == field
        assert reason in rejection.reason
        assert rejection.line_no == mixed.index(raw) + 1
    letters = engine.dead_letters.list()
    assert sorted(d.raw for d in letters) == sorted(raw for raw, _, _ in BAD)
    assert all(d.stage == "ingest" and d.source == "mixed.jsonl" for d in letters)
    engine.processor().run(until_idle=True)
    assert engine.store.count() == 2
    assert view(engine, "bob")["event_count"] == 1


def test_profile_fields_follow_the_contract(engine: Engine) -> None:
    publish(engine, lines(*GOOD))
    engine.processor().run(until_idle=True)
    ann = view(engine, "ann")
    assert ann["lifetime_spend"] == 170.0
    assert ann["order_count"] == 2
    assert ann["average_order_value"] == 100.0
    assert ann["email_sent"] == 1 and ann["open_rate"] == 1.0 and ann["click_rate"] == 1.0
    assert ann["subscribed"] is False
    assert ann["nps_last"] == 9 and ann["nps_average"] == 9.0
    assert ann["support_cases"] == 1 and ann["open_support_cases"] == 1
    assert ann["first_seen"] == "2026-01-01T09:00:00Z"
    assert ann["last_seen"] == "2026-01-09T12:00:00Z"
    assert ann["last_purchase_at"] == "2026-01-05T12:00:00Z"
    assert ann["counts_by_channel"] == {"email": 4, "other": 1, "survey": 1, "support": 1, "web": 3}
    assert ann["lifecycle_stage"] == "new" or ann["lifecycle_stage"] == "active"
    assert [t["event_id"] for t in ann["recent_touchpoints"]][:2] == ["e10", "e9"]


def test_resent_events_are_duplicates_and_count_once(engine: Engine) -> None:
    publish(engine, lines(*GOOD))
    engine.processor().run(until_idle=True)
    before = profiles_by_id(engine)
    again = publish(engine, lines(*GOOD))
    assert (again.accepted, again.duplicates, again.rejected) == (0, len(GOOD), 0)
    stats = engine.processor().run(until_idle=True)
    assert stats.events == 0
    assert profiles_by_id(engine) == before


def test_out_of_order_events_are_placed_by_event_time(engine: Engine) -> None:
    late_first = [GOOD[5], GOOD[10], GOOD[4], GOOD[0]]
    publish(engine, lines(*late_first))
    engine.processor().run(until_idle=True)
    ann = view(engine, "ann")
    assert ann["last_purchase_at"] == "2026-01-05T12:00:00Z"
    assert ann["first_seen"] == "2026-01-01T09:00:00Z"
    assert ann["last_seen"] == "2026-01-05T12:00:00Z"


def test_a_poison_record_goes_to_the_dlq_and_the_partition_keeps_flowing(
    engine: Engine,
) -> None:
    publish(engine, lines(GOOD[0]))
    engine.log.append(TOUCHPOINTS, [Entry("poison-1", "ann", b"\x00garbage", 0, "purchase")])
    publish(engine, lines(GOOD[4]))
    stats = engine.processor().run(until_idle=True)
    assert stats.poison == 1 and stats.events == 2
    assert view(engine, "ann")["order_count"] == 1
    letters = [d for d in engine.dead_letters.list() if d.stage == "process"]
    assert len(letters) == 1 and letters[0].raw == b"\x00garbage".hex()
    assert engine.processor().lag() == 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_small_batches_give_the_same_profiles_as_one_batch(engine: Engine, batch_size: int) -> None:
    from engage.config import Settings

    publish(engine, lines(*GOOD))
    engine.processor(batch_size).run(until_idle=True)
    small = profiles_by_id(engine)
    assert small and all(p["event_count"] > 0 for p in small.values())
    # the same events through the pure harness (fold + rules, no storage)
    from events.ingest import validate
    from rules.harness import replay

    assert engine.rules is not None
    harness = replay(engine.rules, [validate(e) for e in GOOD])
    for customer_id, state in small.items():
        assert harness.profiles[customer_id].to_state() == state
    assert isinstance(engine.settings, Settings)


def test_as_of_equals_the_profile_captured_live_at_that_instant(engine: Engine) -> None:
    history = sorted(GOOD, key=lambda e: parse_iso(e["occurred_at"]))
    cut = parse_iso("2026-01-05T12:00:00Z")
    publish(engine, lines(*[e for e in history if parse_iso(e["occurred_at"]) <= cut]))
    engine.processor().run(until_idle=True)
    captured = engine.store.get("ann")
    assert captured is not None
    publish(engine, lines(*[e for e in history if parse_iso(e["occurred_at"]) > cut]))
    engine.processor().run(until_idle=True)
    from projections.queries import profile_as_of

    past = profile_as_of(engine.log, engine.codec, "ann", cut)
    assert past is not None
    # --as-of folds touchpoints only; the rules' private memory is not part of it
    live = captured.to_state()
    live.pop("rule_state")
    folded = past.to_state()
    folded.pop("rule_state")
    assert folded == live
    assert customer_360(past, cut) == customer_360(captured, cut)
    now = engine.store.get("ann")
    assert now is not None and now.event_count > past.event_count
