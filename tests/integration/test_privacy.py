"""Privacy (issue 14): crypto-shredding, erasure that survives replay,
suppression, access export, the master key, and kill -9 mid-erasure.

Every scan reads every text, json and bytea column of every table in every
schema (and, in Kafka mode, every record of every topic) for the erased
person's email, name, comment and URL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.replay import replay
from engage.config import Settings
from engage.database import connect
from engage.erasure import erase
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.privacy_scan import scan_tables, scan_topics

EMAIL = "ada.lovelace@example.org"
NAME = "Ada Lovelace-Byron"
COMMENT = "the parcel arrived soaked through, Ada"
URL = "https://shop.example/wishlist/ada-7731"
SECRETS = (EMAIL, NAME, COMMENT, URL)
BOB_EMAIL = "bob.babbage@example.org"


def history() -> list[str]:
    """Ada's personal data in every personal field, Bob's beside it, and a
    bad line of Ada's (its raw text goes to the dead-letter store)."""
    ada = [
        event(
            "a1",
            "ada",
            "identify",
            "2026-03-01T10:00:00Z",
            email=EMAIL,
            name=NAME,
            traits={"nickname": NAME},
        ),
        event("a2", "ada", "web_visit", "2026-03-01T10:01:00Z", url=URL, referrer=URL),
        event("a3", "ada", "email_clicked", "2026-03-01T10:02:00Z", campaign_id="c1", url=URL),
        event("a4", "ada", "purchase", "2026-03-01T10:03:00Z", order_id="o1", amount=120.0),
        event(
            "a5",
            "ada",
            "survey_response",
            "2026-03-01T10:04:00Z",
            survey="nps",
            score=3,
            comment=COMMENT,
        ),
        event("a6", "ada", "support_case_opened", "2026-03-01T10:05:00Z", case_id="k1"),
        event(
            "a7",
            "ada",
            "support_case_closed",
            "2026-03-01T10:06:00Z",
            case_id="k1",
            resolution=f"refunded, {NAME} called back",
        ),
        event(
            "a8",
            "ada",
            "purchase",
            "2026-03-02T10:00:00Z",
            order_id="o2",
            amount=80.0,
            gift_note=COMMENT,
        ),
    ]
    bob = [
        event("b1", "bob", "identify", "2026-03-01T11:00:00Z", email=BOB_EMAIL, name="Bob"),
        event("b2", "bob", "purchase", "2026-03-01T11:01:00Z", order_id="o3", amount=50.0),
    ]
    bad = event("a9", "ada", "purchase", "2026-03-03T10:00:00Z", order_id="o4", amount=-1)
    bad["properties"]["note"] = COMMENT
    return [*lines(*ada, *bob), orjson.dumps({**bad, "contact": EMAIL}).decode()]


def run(engine: Engine) -> None:
    engine.processor().run(until_idle=True)


def kpi_totals(dsn: str) -> tuple[Any, ...]:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT sum(events), sum(purchases), sum(revenue_units) FROM kpi_flows"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_nothing_personal_is_readable_on_the_log_even_before_an_erasure(engine: Engine) -> None:
    report = publish(engine, history())
    assert report.accepted == 10 and report.rejected == 1
    run(engine)
    with connect(engine.dsn) as conn:
        payloads = [bytes(r[0]) for r in conn.execute("SELECT payload FROM touchpoints")]
        raws = [r[0] for r in conn.execute("SELECT raw FROM dead_letters")]
    assert len(payloads) == 10
    for secret in (*SECRETS, BOB_EMAIL):
        assert not any(secret.encode() in p for p in payloads), secret
        assert not any(secret in r for r in raws), secret
    # yet every reader that shows a person's data opens it
    view = engine.store.get("ada")
    assert view is not None and view.identity == {"email": EMAIL, "name": NAME}
    assert engine.dead_letters.list()[0].raw.count(COMMENT) == 1


def test_an_erasure_leaves_nothing_readable_in_any_table_and_a_replay_rebuilds_nothing(
    engine: Engine,
) -> None:
    publish(engine, history())
    run(engine)
    before = scan_tables(engine.dsn, SECRETS)
    assert {needle for _, needle in before} >= {EMAIL, NAME}, "the scan finds plaintext"
    totals = kpi_totals(engine.dsn)

    receipt = erase(engine, "ada", "request 2026-114 by email")

    assert scan_tables(engine.dsn, SECRETS) == []
    stores = {s["store"]: s for s in receipt.stores}
    assert stores["privacy_keys"]["rows"] == 1
    assert stores["public.profiles"]["rows"] == 1
    assert stores["public.dead_letters"]["rows"] == 1
    assert stores["public.trigger_log"]["rows"] >= 1  # shredded details
    assert stores["public.touchpoints"]["action"].startswith("kept")
    assert receipt.completed_at is not None
    assert engine.store.get("ada") is None
    assert engine.store.get("bob") is not None, "only Ada is erased"
    assert kpi_totals(engine.dsn) == totals, "aggregate KPIs keep their totals"
    with connect(engine.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM timers WHERE customer_id = 'ada'").fetchone() == (
            0,
        )
        stored = conn.execute("SELECT receipt FROM privacy_erasures").fetchone()
    assert stored is not None and len(stored[0]) == len(receipt.stores)

    run(engine)  # the processor reads subject_erased
    result = replay(engine)
    assert result.events >= 10
    assert engine.store.get("ada") is None, "a replay builds no profile for an erased person"
    bob = engine.store.get("bob")
    assert bob is not None and bob.identity["email"] == BOB_EMAIL
    assert scan_tables(engine.dsn, SECRETS) == []
    with connect(engine.dsn) as conn:
        report = conn.execute(
            "SELECT count(*) FROM engage_replay_2.trigger_outbox WHERE customer_id = 'ada'"
        ).fetchone()
    assert report == (0,), "the replay's shadow triggers for Ada are dropped too"


def test_later_events_are_refused_with_a_reason_until_unsuppressed(engine: Engine) -> None:
    publish(engine, history())
    run(engine)
    erase(engine, "ada", "request 2026-115")

    again = publish(engine, history())
    assert again.accepted == 0 and again.duplicates == 2, "Bob's are repeats; Ada's refused"
    refused = [r for r in again.rejections if "erased" in r.reason]
    assert len(refused) == 8 and all(r.field == "customer_id" for r in refused)
    assert scan_tables(engine.dsn, SECRETS) == [], "their text is not kept, not even in the DLQ"

    assert engine.keys.unsuppress("ada")
    later = event(
        "a20",
        "ada",
        "survey_response",
        "2026-04-01T10:00:00Z",
        survey="csat",
        score=5,
        comment="much better now",
    )
    assert publish(engine, lines(later)).accepted == 1
    run(engine)
    profile = engine.store.get("ada")
    assert profile is not None and profile.event_count == 1, "a fresh start, nothing of before"


def test_the_access_export_holds_everything_decrypted(engine: Engine) -> None:
    from engage.access import export_person

    publish(engine, history())
    run(engine)
    held = export_person(engine, "ada", "2026-11-23T00:00:00Z")
    text = orjson.dumps(held).decode()
    for secret in SECRETS:
        assert secret in text, secret
    assert held["profile"]["email"] == EMAIL
    assert len(held["events"]) == 8
    assert {e["event_id"] for e in held["events"]} == {f"a{i}" for i in range(1, 9)}
    assert held["events"][-1]["extra"] == {"gift_note": COMMENT}
    assert held["dead_letters"][0]["raw"].count(EMAIL) == 1
    assert held["triggers"] and held["key"] is not None and held["suppressed"] is False
    assert BOB_EMAIL not in text


def engage_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engage.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _count(dsn: str, query: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def test_the_master_key_file_is_private_and_a_wrong_or_missing_key_writes_nothing(
    cli_env: dict[str, str], database: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(history()) + "\n")
    first = engage_cli(cli_env, "publish", str(path))
    assert first.returncode == 1, first.stderr  # the bad line
    key_file = Path(cli_env["ENGAGE_HOME"]) / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = _count(database, "SELECT count(*) FROM touchpoints")
    letters = _count(database, "SELECT count(*) FROM dead_letters")
    more = tmp_path / "more.jsonl"
    more.write_text(
        "\n".join(lines(event("c1", "cy", "identify", "2026-03-05T10:00:00Z", email=EMAIL))) + "\n"
    )

    wrong = {**cli_env, "ENGAGE_MASTER_KEY": "A" * 43 + "="}
    missing_home = tmp_path / "elsewhere"
    missing = {**cli_env, "ENGAGE_HOME": str(missing_home)}
    garbled = {**cli_env, "ENGAGE_MASTER_KEY": "not a key"}
    for env, words in (
        (wrong, "wrong master key"),
        (missing, "no master key"),
        (garbled, "ENGAGE_MASTER_KEY must be a 256-bit key"),
    ):
        for command in (["publish", str(more)], ["timeline", "ada"], ["privacy", "export", "ada"]):
            done = engage_cli(env, *command)
            assert done.returncode != 0, (command, done.stdout)
            assert words in done.stderr, (command, done.stderr)
            assert "Traceback" not in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (missing_home / "master.key").exists(), "never a new key for a keyed database"
    assert _count(database, "SELECT count(*) FROM touchpoints") == stored
    assert _count(database, "SELECT count(*) FROM dead_letters") == letters
    assert scan_tables(database, [EMAIL]) == []

    ok = engage_cli(cli_env, "publish", str(more))
    assert ok.returncode == 0, ok.stderr
    from_env = {**cli_env, "ENGAGE_MASTER_KEY": key_file.read_text().strip()}
    shown = engage_cli(from_env, "timeline", "cy", "--json")
    assert shown.returncode == 0 and EMAIL in shown.stdout, shown.stderr


def test_an_erasure_killed_mid_sweep_completes_on_the_next_run(
    cli_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """kill -9 while the sweep waits on a row lock the test holds: the key is
    destroyed, the sweep not done. The next engage command completes it."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(history()) + "\n")
    engage_cli(cli_env, "publish", str(path))
    assert engage_cli(cli_env, "run", "--until-idle").returncode == 0
    dsn = settings.database_url
    assert dsn is not None

    with connect(dsn) as blocker:
        blocker.execute("SELECT * FROM profiles WHERE customer_id = 'ada' FOR UPDATE")
        process = subprocess.Popen(
            [sys.executable, "-m", "engage.cli", "privacy", "erase", "ada", "--reason", "r1"],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = _count(
                dsn,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'DELETE FROM%%profiles%%'",
            )
            if waiting:
                break
            time.sleep(0.1)
        else:
            process.kill()
            pytest.fail("the erasure never reached the profiles")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        blocker.rollback()

    assert _count(dsn, "SELECT count(*) FROM privacy_keys WHERE person = 'ada'") == 0
    assert _count(dsn, "SELECT count(*) FROM privacy_erasures WHERE completed_at IS NULL") == 1
    assert _count(dsn, "SELECT count(*) FROM profiles WHERE customer_id = 'ada'") == 1

    status = engage_cli(cli_env, "status")  # any command completes it
    assert status.returncode == 0, status.stderr
    assert _count(dsn, "SELECT count(*) FROM privacy_erasures WHERE completed_at IS NULL") == 0
    assert _count(dsn, "SELECT count(*) FROM privacy_erasures") == 1, "resumed, not restarted"
    assert _count(dsn, "SELECT count(*) FROM touchpoints WHERE type = '~erased'") == 1
    assert scan_tables(dsn, SECRETS) == []
    rerun = engage_cli(cli_env, "privacy", "erase", "ada", "--reason", "r1", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert orjson.loads(rerun.stdout)["completed_at"] is not None
    assert scan_tables(dsn, SECRETS) == []


def test_kafka_topics_carry_only_ciphertext_and_an_erasure_survives_replay(
    kafka_settings: Settings,
) -> None:
    with Engine.open(kafka_settings) as engine:
        assert engine.kafka is not None
        publish(engine, history())
        engine.dlq_relay().drain()  # type: ignore[union-attr]
        run(engine)
        engine.relay().drain()
        assert scan_topics(engine.kafka, (*SECRETS, BOB_EMAIL)) == []
        assert engine.store.get("ada") is not None

        receipt = erase(engine, "ada", "request 2026-116")
        assert any(s["store"].startswith("kafka:") for s in receipt.stores)
        assert scan_tables(engine.dsn, SECRETS) == []
        assert scan_topics(engine.kafka, SECRETS) == []

        run(engine)
        replay(engine)
        assert engine.store.get("ada") is None
        assert engine.store.get("bob") is not None
        assert scan_tables(engine.dsn, SECRETS) == []
        assert scan_topics(engine.kafka, SECRETS) == []


def test_http_erasure_and_export_need_an_admin_key(settings: Settings, engine: Engine) -> None:
    from engage.http.keys import ApiKeys
    from tests.http_support import api_client

    keys = ApiKeys(str(settings.database_url))
    try:
        _, admin = keys.create("dpo", "admin")
    finally:
        keys.close()
    with api_client(settings) as api:
        body = [orjson.loads(line) for line in history()[:-1]]
        assert api.post(body).json()["accepted"] == 10
        run(engine)
        for key in (api.read_key, api.ingest_key):
            assert api.get("/v1/customers/ada/export", key=key).status_code == 403
            refused = api.client.delete(
                "/v1/customers/ada",
                params={"reason": "r"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert refused.status_code == 403 and "admin key" in refused.json()["error"]
        assert engine.store.get("ada") is not None

        held = api.get("/v1/customers/ada/export", key=admin)
        assert held.status_code == 200
        assert held.json()["profile"]["email"] == EMAIL
        assert URL in held.text and COMMENT in held.text
        assert api.get("/v1/customers/nobody/export", key=admin).status_code == 404
        # an admin key reads nothing else
        assert api.get("/v1/customers/ada", key=admin).status_code == 403

        admin_auth = {"Authorization": f"Bearer {admin}"}
        assert api.client.delete("/v1/customers/ada", headers=admin_auth).status_code == 422
        erased = api.client.delete(
            "/v1/customers/ada", params={"reason": "ticket 9"}, headers=admin_auth
        )
        assert erased.status_code == 200, erased.text
        receipt = erased.json()
        assert receipt["completed_at"] and receipt["person"] == "ada"
        assert {"privacy_keys", "public.profiles"} <= {s["store"] for s in receipt["stores"]}
        assert scan_tables(engine.dsn, SECRETS) == []

        refused_event = api.post(body[0])
        assert refused_event.status_code == 422
        assert "erased" in refused_event.json()["results"][0]["reason"]
        after = api.get("/v1/customers/ada/export", key=admin).json()
        assert after["profile"] is None and after["suppressed"] is True
        assert not any(secret in orjson.dumps(after).decode() for secret in SECRETS)
