"""The closed loop on real PostgreSQL: arms, conversions written with the
batch, control triggers held back from the stream and from webhooks, delivery
feedback, the outcomes report (library, CLI and HTTP), and a replay that
rebuilds the same conversions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from consumers.replay import replay
from consumers.webhook_store import WebhookStore
from consumers.webhooks import DeliveryPolicy, deliver_until_idle
from engage.config import Settings
from engage.database import connect
from engage.outcomes import outcomes_report
from engage.runtime import Engine
from events.codec import TriggerCodec
from events.log import TRIGGERS, read_stream
from events.timefmt import parse_iso
from rules.arms import arm_of
from tests.helpers import event, lines, publish
from tests.http_support import Api, api_client, receiver, wait_for

FAST = DeliveryPolicy(timeout_s=2.0, max_attempts=2, base_backoff_s=0.05, max_backoff_s=0.1)


def _person(arm: str, prefix: str) -> str:
    return next(c for i in range(10_000) if arm_of("win-back-90d", c := f"{prefix}{i}", 0.1) == arm)


CTL = _person("control", "ctl-")
TRT = _person("treatment", "trt-")
LATE = _person("treatment", "late-")


def _buy(eid: str, cid: str, when: str, amount: float) -> dict[str, Any]:
    return event(eid, cid, "purchase", when, order_id=f"o-{eid}", amount=amount)


def _history(engine: Engine) -> None:
    """Three repeat buyers fall quiet; win-backs fire on 2026-04-10; two come
    back 5 days later (inside the 14-day goal window), one after 20 days."""
    first = []
    for cid in (CTL, TRT, LATE):
        first += [
            _buy(f"{cid}-1", cid, "2026-01-01T10:00:00Z", 20),
            _buy(f"{cid}-2", cid, "2026-01-10T10:00:00Z", 30),
        ]
    publish(engine, lines(*first))
    engine.processor().run(until_idle=True, now=parse_iso("2026-04-12T00:00:00Z"))
    publish(
        engine,
        lines(
            _buy(f"{CTL}-3", CTL, "2026-04-15T10:00:00Z", 70),
            _buy(f"{TRT}-3", TRT, "2026-04-15T10:00:00Z", 30),
            _buy(f"{LATE}-3", LATE, "2026-04-30T10:00:00Z", 50),
        ),
    )
    engine.processor().run(until_idle=True)


def _stream(engine: Engine) -> list[Any]:
    codec = TriggerCodec()
    return [codec.decode(r.payload) for rs in read_stream(engine.stream, TRIGGERS) for r in rs]


def _conversions(engine: Engine) -> list[tuple[Any, ...]]:
    with connect(engine.dsn) as conn:
        return conn.execute(
            "SELECT rule_id, customer_id, arm, event_id, value, converted_at - fired_at"
            " FROM trigger_conversions ORDER BY rule_id, customer_id"
        ).fetchall()


def test_conversions_arms_and_the_report(engine: Engine) -> None:
    _history(engine)
    day = 86_400_000_000
    assert _conversions(engine) == [
        ("first-purchase-thank-you", CTL, "treatment", f"{CTL}-2", 30.0, 9 * day),
        ("first-purchase-thank-you", LATE, "treatment", f"{LATE}-2", 30.0, 9 * day),
        ("first-purchase-thank-you", TRT, "treatment", f"{TRT}-2", 30.0, 9 * day),
        ("win-back-90d", CTL, "control", f"{CTL}-3", 70.0, 5 * day),
        ("win-back-90d", TRT, "treatment", f"{TRT}-3", 30.0, 5 * day),
    ]
    # the control win-back is recorded in the outbox, never on the stream
    on_stream = {(t.rule_id, t.customer_id) for t in _stream(engine)}
    assert ("win-back-90d", TRT) in on_stream and ("win-back-90d", LATE) in on_stream
    assert ("win-back-90d", CTL) not in on_stream
    with connect(engine.dsn) as conn:
        held = conn.execute(
            "SELECT customer_id, arm, published_at IS NOT NULL FROM trigger_outbox"
            " WHERE rule_id = 'win-back-90d' ORDER BY customer_id"
        ).fetchall()
    assert sorted(held) == sorted([(CTL, "control", True), (LATE, "treatment", True),
                                   (TRT, "treatment", True)])  # fmt: skip
    (win,) = outcomes_report(engine, "win-back-90d")
    treatment, control = win["arms"]
    assert (treatment["triggers"], treatment["conversions"], treatment["revenue"]) == (2, 1, 30.0)
    assert (control["triggers"], control["conversions"], control["revenue"]) == (1, 1, 70.0)
    assert treatment["median_hours_to_convert"] == 120.0
    assert win["uplift"]["difference"] == -0.5
    low, high = win["uplift"]["ci95"]
    assert -1 <= low < -0.5 < high <= 1


def test_a_replay_rebuilds_the_same_conversions(engine: Engine) -> None:
    _history(engine)
    before = _conversions(engine)
    assert before
    replay(engine, workers=1)
    assert _conversions(engine) == before


def test_control_triggers_never_reach_a_webhook_and_deliveries_are_recorded(
    engine: Engine,
) -> None:
    with receiver() as hook:
        store = WebhookStore(engine.dsn)
        try:
            store.add(hook.url, None, None, engine.log.heads(TRIGGERS), allow_private=True)
        finally:
            store.close()
        _history(engine)
        deliver_until_idle(engine.dsn, engine.log, FAST)
        wait_for(lambda: len(hook.ok()) >= 1, what="deliveries")
        sent = [orjson.loads(r.body) for r in hook.ok()]
    assert {t["arm"] for t in sent} == {"treatment"}
    assert (CTL, "win-back-90d") not in {(t["customer_id"], t["rule_id"]) for t in sent}
    assert (TRT, "win-back-90d") in {(t["customer_id"], t["rule_id"]) for t in sent}
    with connect(engine.dsn) as conn:
        delivered = conn.execute(
            "SELECT trigger_id, arm FROM trigger_feedback WHERE status = 'delivered'"
        ).fetchall()
    assert sorted(tid for tid, _ in delivered) == sorted(t["trigger_id"] for t in sent)
    (win,) = outcomes_report(engine, "win-back-90d")
    assert win["arms"][0]["feedback"]["delivered"] == 2
    assert win["arms"][1]["feedback"]["delivered"] == 0


def test_cli_outcomes_and_triggers_by_arm(engine: Engine, cli_env: dict[str, str]) -> None:
    _history(engine)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engage.cli", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    report = cli("outcomes", "--json")
    assert report.returncode == 0, report.stderr
    rows = {r["rule_id"]: r for r in map(orjson.loads, report.stdout.splitlines())}
    assert list(rows)[:3] == ["first-purchase-thank-you", "win-back-90d", "detractor-follow-up"]
    assert rows["win-back-90d"]["arms"][1]["conversions"] == 1
    assert rows["detractor-follow-up"]["uplift"] is None
    table = cli("outcomes", "--rule", "win-back-90d")
    assert table.returncode == 0 and "win-back-90d" in table.stdout and "control" in table.stdout
    since = cli("outcomes", "--json", "--since", "2026-02-01T00:00:00Z")
    later = {r["rule_id"]: r for r in map(orjson.loads, since.stdout.splitlines())}
    assert later["first-purchase-thank-you"]["arms"][0]["triggers"] == 0
    default = cli("triggers", "--json", "--rule", "win-back-90d")
    assert sorted(orjson.loads(x)["customer_id"] for x in default.stdout.splitlines()) == sorted(
        [TRT, LATE]
    )
    control = cli("triggers", "--json", "--arm", "control")
    held = [orjson.loads(x) for x in control.stdout.splitlines()]
    assert [(t["customer_id"], t["rule_id"], t["arm"]) for t in held] == [
        (CTL, "win-back-90d", "control")
    ]
    every = cli("triggers", "--json", "--arm", "all", "--rule", "win-back-90d")
    assert len(every.stdout.splitlines()) == 3
    bad = cli("triggers", "--arm", "placebo")
    assert bad.returncode != 0 and "treatment, control or all" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with api_client(settings) as client:
        yield client


def test_outcome_posts_repeated_and_bad(api: Api, engine: Engine) -> None:
    _history(engine)
    trt = next(t for t in _stream(engine) if t.customer_id == TRT and t.rule_id == "win-back-90d")
    with connect(engine.dsn) as conn:
        (ctl,) = conn.execute(
            "SELECT trigger_id FROM trigger_outbox WHERE arm = 'control'"
        ).fetchone() or ("",)
    headers = {"Authorization": f"Bearer {api.ingest_key}"}

    def post(trigger_id: str, body: Any) -> Any:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return api.client.post(
            f"/v1/triggers/{trigger_id}/outcome", content=content, headers=headers
        )

    first = post(trt.trigger_id, {"status": "opened", "at": "2026-04-11T08:00:00Z"})
    assert first.status_code == 200, first.text
    assert first.json() == {"trigger_id": trt.trigger_id, "status": "opened", "recorded": True}
    again = post(trt.trigger_id, {"status": "opened"})
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert post(trt.trigger_id, {"status": "clicked", "source": "esp"}).json()["recorded"]
    refusals = [
        (post(trt.trigger_id, {"status": "read"}), 422, "status"),
        (post(trt.trigger_id, b"{not json"), 400, "(body)"),
        (post(trt.trigger_id, [1, 2]), 422, "(body)"),
        (post(trt.trigger_id, {"status": "opened", "at": "yesterday"}), 422, "at"),
        (post(trt.trigger_id, {"status": "opened", "why": 1}), 422, "why"),
        (post("no-such-trigger", {"status": "opened"}), 404, "trigger_id"),
        (post(ctl, {"status": "delivered"}), 409, "trigger_id"),
    ]
    for answer, status, field in refusals:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"].startswith(f"{field}:")
    letters = engine.dead_letters.list(20)
    assert len(letters) == len(refusals)
    by_field = {d.field: d for d in letters}
    assert by_field["status"].raw == '{"status":"read"}'
    assert by_field["(body)"].stage == "outcome"
    assert "{not json" in {d.raw for d in letters}
    # an ingest key may post, a read key may not; reading needs a read key
    wrong = api.client.post(
        f"/v1/triggers/{trt.trigger_id}/outcome",
        json={"status": "opened"},
        headers={"Authorization": f"Bearer {api.read_key}"},
    )
    assert wrong.status_code == 403
    report = api.get("/v1/outcomes", params={"rule_id": "win-back-90d"})
    assert report.status_code == 200
    (win,) = report.json()["rules"]
    assert win["arms"][0]["feedback"] == {
        "delivered": 0,
        "opened": 1,
        "clicked": 1,
        "bounced": 0,
        "failed": 0,
    }
    assert win["arms"][1]["conversions"] == 1 and win["uplift"]["method"] == "newcombe"
    assert api.get("/v1/outcomes", params={"since": "junk"}).status_code == 422
