"""Issue 11, where a check must hold while the engine runs: the webhook target
policy is applied again before every delivery, and a hot reload of an
over-costly rule keeps the last good rules."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from consumers.rule_reload import RuleFileWatcher
from consumers.webhook_store import WebhookStore
from consumers.webhooks import DeliveryPolicy, deliver_until_idle
from engage.runtime import Engine
from events.log import TRIGGERS
from rules import default_rules_path
from tests.helpers import event, lines, publish
from tests.http_support import receiver

ONE_TRY = DeliveryPolicy(timeout_s=2.0, max_attempts=1, base_backoff_s=0.01)


def _fire(engine: Engine, customer: str) -> None:
    publish(
        engine,
        lines(event(f"p-{customer}", customer, "purchase", "2026-03-01T10:00:00Z",
                    order_id=f"o-{customer}", amount=20)),
    )  # fmt: skip
    engine.processor().run(until_idle=True)


def test_the_target_policy_is_checked_again_at_delivery(engine: Engine) -> None:
    """A target that passed when added but is private when delivered to (what
    DNS rebinding does) gets no request; the attempt is logged with the reason."""
    with receiver() as hook:
        store = WebhookStore(engine.dsn)
        try:
            allowed = store.add(hook.url, None, None, engine.log.heads(TRIGGERS),
                                allow_private=True)  # fmt: skip
            guarded = store.add(hook.url, None, None, engine.log.heads(TRIGGERS),
                                allow_private=True)  # fmt: skip
        finally:
            store.close()
        # the guarded subscription loses its exemption, as a public name that
        # now resolves to loopback would fail the check
        with psycopg.connect(engine.dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE webhook_subscriptions SET allow_private = false WHERE id = %s",
                (guarded.id,),
            )
        _fire(engine, "ann")
        tried = deliver_until_idle(engine.dsn, engine.stream, ONE_TRY)
        assert tried == {allowed.id: 1, guarded.id: 1}
        assert len(hook.received) == 1
        assert hook.received[0].headers["Engage-Subscription-Id"] == str(allowed.id)
        store = WebhookStore(engine.dsn)
        try:
            dead = store.dead(guarded.id)
        finally:
            store.close()
        assert len(dead) == 1 and "loopback" in dead[0][3] and "--allow-private" in dead[0][3]


def test_a_reload_that_would_stall_processing_keeps_the_last_good_rules(
    engine: Engine, tmp_path: Path
) -> None:
    """Defect 4: four nested .all() hot-reloaded into a running engine stopped
    processing at 100% CPU."""
    path = tmp_path / "rules.yaml"
    text = default_rules_path().read_text()
    path.write_text(text)
    pipeline = engine.pipeline()
    messages: list[str] = []
    watcher = RuleFileWatcher(path, pipeline, messages.append)
    original = pipeline.rules
    costly = (
        text
        + """
  - id: stall
    version: 1
    kind: custom
    audience: marketing
    on: event
    types: [purchase]
    when: >-
      event.properties.items.all(a, event.properties.items.all(b,
      event.properties.items.all(c, event.properties.items.all(d, true))))
"""
    )
    path.write_text(costly)
    os.utime(path, ns=(1, 10**18))
    assert watcher.check() is False
    assert pipeline.rules is original
    assert "keeping the last good rules" in messages[-1]
    assert "nested 4 deep" in messages[-1] and "stall" in messages[-1]
    _fire(engine, "bob")  # processing goes on with the last good rules
    assert engine.store.get("bob") is not None
