"""Webhook delivery against real HTTP receivers on loopback: signed bodies,
retries with backoff, dead letters, filters, and isolation of a slow endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from consumers.webhook_signature import verify
from consumers.webhook_store import Subscription, WebhookStore
from consumers.webhooks import DeliveryPolicy, WebhookDeliverer, deliver_until_idle
from engage.runtime import Engine
from events.log import TRIGGERS
from tests.helpers import event, lines, publish
from tests.http_support import receiver, wait_for

FAST = DeliveryPolicy(timeout_s=2.0, max_attempts=4, base_backoff_s=0.05, max_backoff_s=0.2)


def _subscribe(engine: Engine, url: str, **filters: str | None) -> Subscription:
    store = WebhookStore(engine.dsn)
    try:
        return store.add(
            url,
            filters.get("kind"),
            filters.get("rule_id"),
            engine.log.heads(TRIGGERS),
            allow_private=True,  # the receiver is on loopback
        )
    finally:
        store.close()


def _fire(engine: Engine, *customers: str) -> None:
    publish(
        engine,
        lines(
            *[
                event(f"p-{c}", c, "purchase", "2026-03-01T10:00:00Z", order_id=f"o-{c}", amount=20)
                for c in customers
            ]
        ),
    )
    engine.processor().run(until_idle=True)


@contextmanager
def running(engine: Engine, policy: DeliveryPolicy = FAST) -> Iterator[None]:
    """The deliverer as `engage serve` runs it, on its own Engine in a thread."""
    own = Engine.open(engine.settings)
    stop = threading.Event()
    deliverer = WebhookDeliverer(own.dsn, own.log, policy, poll_s=0.1)
    thread = threading.Thread(target=deliverer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=20)
        own.close()


def test_retries_until_the_receiver_recovers_and_signs_every_attempt(engine: Engine) -> None:
    with receiver([500, 503]) as hook:
        sub = _subscribe(engine, hook.url)
        _fire(engine, "ann")
        with running(engine):
            wait_for(lambda: len(hook.ok()) == 1, what="a successful delivery")
        assert [r.status for r in hook.received] == [500, 503, 200]
        for attempt, got in enumerate(hook.received, start=1):
            assert verify(sub.secret, got.headers["Engage-Signature"], got.body, time.time())
            assert got.headers["Engage-Delivery-Attempt"] == str(attempt)
        trigger = orjson.loads(hook.ok()[0].body)
        assert trigger["rule_id"] == "first-purchase-thank-you"
        assert trigger["customer_id"] == "ann"
        assert hook.ok()[0].headers["Engage-Trigger-Id"] == trigger["trigger_id"]
    store = WebhookStore(engine.dsn)
    try:
        log = store.attempts(sub.id)
        assert [(a.attempt, a.status_code, a.outcome) for a in log] == [
            (1, 500, "retry"),
            (2, 503, "retry"),
            (3, 200, "delivered"),
        ]
        assert store.counts() == {(sub.id, "delivered"): 1}
    finally:
        store.close()
    from engage.http.metrics import Metrics
    from engage.http.pool import EnginePool

    metrics = Metrics()
    pool = EnginePool(engine.settings, 1, None)
    try:
        metrics.bind(pool)
        text = metrics.render()[0].decode()
    finally:
        pool.close()
    assert f'engage_webhook_deliveries{{state="delivered",subscription="{sub.id}"}} 1.0' in text


def test_gives_up_after_max_attempts_then_retry_requeues(engine: Engine) -> None:
    with receiver([500] * 4) as hook:
        sub = _subscribe(engine, hook.url)
        _fire(engine, "ann")
        with running(engine):
            wait_for(lambda: len(hook.received) == 4, what="four failed attempts")
            store = WebhookStore(engine.dsn)
            try:
                wait_for(lambda: store.counts() == {(sub.id, "dead"): 1}, what="a dead delivery")
                dead = store.dead(sub.id)
                assert [(d[1], d[2], d[3]) for d in dead] == [
                    (orjson.loads(hook.received[0].body)["trigger_id"], 4, "HTTP 500")
                ]
                assert store.retry_dead(sub.id) == 1
                wait_for(lambda: len(hook.ok()) == 1, what="the re-queued delivery")
            finally:
                store.close()
        assert [r.status for r in hook.received] == [500, 500, 500, 500, 200]


def test_a_dead_endpoint_is_logged_as_a_connection_error(engine: Engine) -> None:
    with receiver() as hook:
        url = hook.url
    sub = _subscribe(engine, url)  # nothing listens there any more
    _fire(engine, "ann")
    tried = deliver_until_idle(engine.dsn, engine.log, FAST)
    assert tried == {sub.id: 1}
    store = WebhookStore(engine.dsn)
    try:
        [attempt] = store.attempts(sub.id)
        assert attempt.status_code is None and attempt.outcome == "retry"
        assert "ConnectError" in (attempt.error or "")
    finally:
        store.close()


def test_a_slow_endpoint_does_not_hold_up_the_others(engine: Engine) -> None:
    with receiver(block=True) as slow, receiver() as fast:
        _subscribe(engine, slow.url)
        _subscribe(engine, fast.url)
        _fire(engine, "ann", "bob", "cy")
        with running(engine, DeliveryPolicy(timeout_s=20.0, base_backoff_s=0.05)):
            wait_for(slow.started.is_set, what="the slow endpoint to be called")
            # the slow endpoint is still holding its first request...
            wait_for(lambda: len(fast.ok()) == 3, what="the fast endpoint's deliveries")
            assert slow.received == []
            slow.release.set()  # type: ignore[union-attr]
            wait_for(lambda: len(slow.ok()) == 3, what="the slow endpoint's deliveries")


def test_filters_and_cursors_per_subscription(engine: Engine) -> None:
    _fire(engine, "early")  # before any subscription: not delivered
    with receiver() as everything, receiver() as thanks, receiver() as service:
        _subscribe(engine, everything.url)
        _subscribe(engine, thanks.url, kind="thank_you")
        _subscribe(engine, service.url, rule_id="detractor-follow-up")
        _fire(engine, "ann", "bob")
        publish(
            engine,
            lines(
                event("s1", "ann", "survey_response", "2026-03-02T10:00:00Z", survey="nps", score=2)
            ),
        )
        engine.processor().run(until_idle=True)
        deliver_until_idle(engine.dsn, engine.log, FAST)

        def rules(got: list) -> list[tuple[str, str]]:
            return sorted(
                (orjson.loads(r.body)["rule_id"], orjson.loads(r.body)["customer_id"]) for r in got
            )

        assert rules(everything.ok()) == [
            ("detractor-follow-up", "ann"),
            ("first-purchase-thank-you", "ann"),
            ("first-purchase-thank-you", "bob"),
        ]
        assert rules(thanks.ok()) == [
            ("first-purchase-thank-you", "ann"),
            ("first-purchase-thank-you", "bob"),
        ]
        assert rules(service.ok()) == [("detractor-follow-up", "ann")]
        # a second pass delivers nothing again: the cursors and queue remember
        deliver_until_idle(engine.dsn, engine.log, FAST)
        assert len(everything.received) == 3
