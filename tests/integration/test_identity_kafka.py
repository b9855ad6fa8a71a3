"""Identity in Kafka mode, on a real Kafka-protocol broker (Tansu): the same
persons, profiles and triggers as the embedded mode on the same input, with
Faust workers, an unlink, and a worker killed with SIGKILL part way.

The publish step keys each event by its person before it reaches the topic
(``projections.identity_router``), so a person's events and identity
records sit on one partition, read by one worker, as in the embedded mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers.replay import replay
from engage.config import Settings
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.ingest import parse_line
from events.model import Touchpoint, TriggerEvent
from events.timefmt import parse_iso
from tests.conftest import TEST_PARTITIONS
from tests.helpers import lines, profiles_by_id
from tests.integration.test_identity import ev
from tests.integration.test_identity_crash import identity_history
from tests.integration.test_kafka_mode import NOW, _run_workers
from tests.kafka_workers import kill_one_mid_stream, topic_triggers, wait_until_done


@pytest.fixture
def embedded_settings(fresh_database: Callable[[], str], tmp_path: Path) -> Settings:
    return Settings(fresh_database(), tmp_path / ".engage-embedded", None, TEST_PARTITIONS)


def scenarios() -> list[Touchpoint]:
    """The issue's cases: an anonymous browse then a purchase, two devices
    joined by an email, a second customer id refused, a thank-you on each
    side of a merge."""
    raw = [
        ev("s1", "web_visit", "2026-02-01T10:00:00Z", anonymous="dev-1", url="https://x/a"),
        ev("s2", "purchase", "2026-02-01T10:10:00Z", customer="c-1", anonymous="dev-1",
           order_id="o1", amount=40.0),
        ev("s3", "web_visit", "2026-02-02T10:00:00Z", anonymous="phone", url="https://x/1"),
        ev("s4", "web_visit", "2026-02-02T11:00:00Z", anonymous="laptop", url="https://x/2"),
        ev("s5", "identify", "2026-02-03T10:00:00Z", anonymous="phone", email="ann@example.com"),
        ev("s6", "identify", "2026-02-04T10:00:00Z", anonymous="laptop", email="ann@example.com"),
        ev("s7", "purchase", "2026-02-05T10:00:00Z", customer="c-a", anonymous="kiosk",
           order_id="o7", amount=5.0),
        ev("s8", "purchase", "2026-02-05T11:00:00Z", customer="c-b", anonymous="kiosk",
           order_id="o8", amount=7.0),
        ev("s9", "purchase", "2026-02-06T10:00:00Z", anonymous="dev-9", order_id="o9",
           amount=10.0),
        ev("s10", "identify", "2026-02-07T10:00:00Z", customer="c-9", anonymous="dev-9"),
        ev("s11", "purchase", "2026-02-08T10:00:00Z", customer="c-9", order_id="o11",
           amount=15.0),
    ]  # fmt: skip
    parsed = [parse_line(line, n) for n, line in enumerate(lines(*raw), 1)]
    return [e for e in parsed if isinstance(e, Touchpoint)]


def _publish(engine: Engine, events: list[Touchpoint]) -> None:
    publisher = engine.publisher()
    for start in range(0, len(events), 500):
        report = publisher.publish_events(events[start : start + 500], [], "history")
        assert report.rejected == 0


def _triggers(engine: Engine) -> list[TriggerEvent]:
    decoded = TriggerCodec().decode_many([r.payload for r in engine.log.find_triggers()])
    return sorted((t for t in decoded if not isinstance(t, CodecError)), key=lambda t: t.trigger_id)


def _same(engine: Engine, profiles: dict[str, Any], triggers: list[TriggerEvent]) -> None:
    """The Kafka run ended with the embedded run's profiles and triggers."""
    assert profiles_by_id(engine) == profiles
    found, _ = topic_triggers(engine)
    assert sorted(found, key=lambda t: t.trigger_id) == triggers


def _embedded(settings: Settings, events: list[Touchpoint], unlink: bool) -> tuple[Any, Any]:
    with Engine.open(settings) as engine:
        _publish(engine, events)
        engine.processor().run(until_idle=True, now=parse_iso(NOW))
        if unlink:
            engine.unlink("c-a", "kiosk", "a shared kiosk")
            engine.processor().run(until_idle=True, now=parse_iso(NOW))
        return profiles_by_id(engine), _triggers(engine)


def test_identity_on_the_broker_equals_the_embedded_mode(
    kafka_settings: Settings,
    embedded_settings: Settings,
    tmp_path: Path,
) -> None:
    events = sorted(scenarios(), key=lambda e: e.occurred_at)
    want_profiles, want_triggers = _embedded(embedded_settings, events, unlink=True)
    assert want_profiles["c-1"]["event_count"] == 2 and "dev-1" not in want_profiles
    assert want_profiles["phone"]["event_count"] == 4 and "laptop" not in want_profiles
    assert want_profiles["c-b"]["order_count"] == 1
    thanks = [t.customer_id for t in want_triggers if t.rule_id == "first-purchase-thank-you"]
    assert thanks.count("c-9") + thanks.count("dev-9") == 1, "one thank-you per person"

    with Engine.open(kafka_settings) as engine:
        _publish(engine, events)
        workers = _run_workers(kafka_settings, tmp_path, 1, "--batch-size", "4")
        try:
            wait_until_done(engine, workers)
            engine.unlink("c-a", "kiosk", "a shared kiosk")
            wait_until_done(engine, workers)
        finally:
            for w in workers:
                w.stop()
        _same(engine, want_profiles, want_triggers)
        # unlinked from c-a, the kiosk joins c-b, whose claim had been refused
        kiosk = engine.identity.find("kiosk")
        assert kiosk is not None and kiosk.person_id == "c-b"
        # a replay of the topic gives the same persons and profiles
        replay(engine, workers=1, batch_size=3, now=parse_iso(NOW))
        assert profiles_by_id(engine) == want_profiles


@pytest.mark.slow
def test_a_worker_killed_during_merges_loses_and_doubles_nothing(
    kafka_settings: Settings,
    embedded_settings: Settings,
    tmp_path: Path,
) -> None:
    events = sorted(identity_history(), key=lambda e: (e.occurred_at, e.event_id))
    want_profiles, want_triggers = _embedded(embedded_settings, events, unlink=False)
    with Engine.open(kafka_settings) as engine:
        _publish(engine, events)
        assert engine.kafka is not None
        total = sum(engine.kafka.heads("touchpoints").values())
        workers = _run_workers(kafka_settings, tmp_path, 2, "--batch-size", "50")
        try:
            kill_one_mid_stream(engine, workers, total)
        finally:
            for w in workers:
                w.stop()
        _same(engine, want_profiles, want_triggers)
