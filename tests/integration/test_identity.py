"""Identity on real PostgreSQL, end to end through the publish step and the
processor: events are keyed by person at the door, and the processor
re-derives a person when an identity record reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from consumers.replay import replay
from engage.config import Settings
from engage.runtime import Engine
from events.codec import TriggerCodec
from events.log import TRIGGERS, read_stream
from events.timefmt import parse_iso
from tests.helpers import lines, profiles_by_id, publish
from tests.integration.test_privacy import engage_cli

NOW = parse_iso("2026-03-01T00:00:00Z")
RUN = ("run", "--until-idle", "--now", "2026-03-01T00:00:00Z")


def ev(
    eid: str,
    type_: str,
    when: str,
    customer: str | None = None,
    anonymous: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": eid, "type": type_, "occurred_at": when}
    if customer is not None:
        out["customer_id"] = customer
    if anonymous is not None:
        out["anonymous_id"] = anonymous
    out["properties"] = properties
    return out


def run(engine: Engine) -> None:
    engine.processor().run(until_idle=True, now=NOW)


def triggers(engine: Engine) -> list[tuple[str, str]]:
    codec = TriggerCodec()
    return sorted(
        (t.rule_id, t.customer_id)
        for chunk in read_stream(engine.log, TRIGGERS)
        for t in codec.decode_many([r.payload for r in chunk])
        if not isinstance(t, Exception)
    )


def test_an_anonymous_browse_then_a_purchase_is_one_person(engine: Engine) -> None:
    report = publish(
        engine,
        lines(
            ev("e1", "web_visit", "2026-02-01T10:00:00Z", anonymous="dev-1", url="https://x/a"),
            ev("e2", "web_visit", "2026-02-01T10:05:00Z", anonymous="dev-1", url="https://x/b"),
        ),
    )
    assert report.accepted == 2
    run(engine)
    assert profiles_by_id(engine)["dev-1"]["event_count"] == 2
    publish(
        engine,
        lines(
            ev("e3", "purchase", "2026-02-01T10:10:00Z", customer="c-1", anonymous="dev-1",
               order_id="o1", amount=40.0),
        ),
    )  # fmt: skip
    run(engine)
    profiles = profiles_by_id(engine)
    assert "dev-1" not in profiles
    assert profiles["c-1"]["event_count"] == 3
    assert profiles["c-1"]["order_count"] == 1
    assert ("first-purchase-thank-you", "c-1") in triggers(engine)


def test_one_thank_you_per_person_across_a_merge(engine: Engine) -> None:
    """The device bought anonymously (its own thank-you); when it is linked to
    a customer who then buys, the merged person gets no second one."""
    publish(
        engine,
        lines(
            ev("a1", "purchase", "2026-02-01T10:00:00Z", anonymous="dev-9", order_id="o1",
               amount=10.0),
        ),
    )  # fmt: skip
    run(engine)
    publish(
        engine,
        lines(
            ev("a2", "identify", "2026-02-02T10:00:00Z", customer="c-9", anonymous="dev-9"),
            ev("a3", "purchase", "2026-02-03T10:00:00Z", customer="c-9", order_id="o2",
               amount=15.0),
        ),
    )  # fmt: skip
    run(engine)
    fired = [t for t in triggers(engine) if t[0] == "first-purchase-thank-you"]
    assert fired == [("first-purchase-thank-you", "dev-9")]
    profile = profiles_by_id(engine)["c-9"]
    assert profile["order_count"] == 2


def test_two_devices_joined_by_an_email_are_one_person(engine: Engine) -> None:
    publish(
        engine,
        lines(
            ev("d1", "web_visit", "2026-02-01T10:00:00Z", anonymous="phone", url="https://x/1"),
            ev("d2", "web_visit", "2026-02-01T11:00:00Z", anonymous="laptop", url="https://x/2"),
            ev("d3", "identify", "2026-02-02T10:00:00Z", anonymous="phone",
               email="Ann@Example.com"),
        ),
    )  # fmt: skip
    run(engine)
    publish(
        engine,
        lines(
            ev("d4", "identify", "2026-02-03T10:00:00Z", anonymous="laptop",
               email=" ann@example.com"),
            ev("d5", "web_visit", "2026-02-03T11:00:00Z", anonymous="laptop", url="https://x/3"),
        ),
    )  # fmt: skip
    run(engine)
    profiles = profiles_by_id(engine)
    assert "laptop" not in profiles
    assert profiles["phone"]["event_count"] == 5
    for name in ("phone", "laptop", "ANN@example.com"):
        view = engine.customer_view(name)
        assert view is not None
        assert view["person_id"] == "phone"
        assert view["event_count"] == 5
        email = engine.identity.pseudonym("ann@example.com")
        assert email.startswith("hmac:") and "example" not in email
        assert {"kind": "email", "value": email} in view["identifiers"]
        assert view["merged_from"] == ["laptop"]


def test_a_second_customer_id_is_a_conflict_not_a_merge(engine: Engine) -> None:
    publish(
        engine,
        lines(
            ev("k1", "purchase", "2026-02-01T10:00:00Z", customer="c-a", anonymous="kiosk",
               order_id="o1", amount=5.0),
            ev("k2", "purchase", "2026-02-01T11:00:00Z", customer="c-b", anonymous="kiosk",
               order_id="o2", amount=7.0),
        ),
    )  # fmt: skip
    run(engine)
    profiles = profiles_by_id(engine)
    assert profiles["c-a"]["order_count"] == 1
    assert profiles["c-b"]["order_count"] == 1
    person = engine.identity.find("c-b")
    assert person is not None and person.person_id == "c-b"
    kiosk = engine.identity.find("kiosk")
    assert kiosk is not None and kiosk.person_id == "c-a"
    reasons = [c.reason for c in kiosk.conflicts]
    assert any("at most one customer_id" in r for r in reasons), reasons


def test_an_unlink_refolds_both_sides_and_replay_gives_the_same(engine: Engine) -> None:
    publish(
        engine,
        lines(
            ev("u1", "web_visit", "2026-02-01T10:00:00Z", anonymous="shared", url="https://x/1"),
            ev("u2", "web_visit", "2026-02-01T10:30:00Z", anonymous="shared", url="https://x/2"),
            ev("u3", "purchase", "2026-02-02T10:00:00Z", customer="c-u", anonymous="shared",
               order_id="o1", amount=30.0),
            ev("u4", "purchase", "2026-02-03T10:00:00Z", customer="c-u", order_id="o2",
               amount=20.0),
        ),
    )  # fmt: skip
    run(engine)
    assert profiles_by_id(engine)["c-u"]["event_count"] == 4
    entries = engine.unlink("c-u", "shared", "a shared kiosk")
    assert entries and entries[0].record_id.startswith("~unlinked/")
    run(engine)
    profiles = profiles_by_id(engine)
    assert profiles["c-u"]["event_count"] == 2  # its purchases, not the kiosk's visits
    assert profiles["c-u"]["order_count"] == 2
    assert profiles["shared"]["event_count"] == 2
    assert engine.identity.find("shared").person_id == "shared"  # type: ignore[union-attr]
    before = profiles_by_id(engine)
    replay(engine, workers=1, batch_size=2)
    after = profiles_by_id(engine)
    assert {k: v["event_count"] for k, v in after.items()} == {
        k: v["event_count"] for k, v in before.items()
    }
    assert after == before


def test_http_identity_reads_by_any_identifier_and_unlinks_with_an_admin_key(
    settings: Settings, engine: Engine
) -> None:
    from engage.http.keys import ApiKeys
    from tests.http_support import api_client

    keys = ApiKeys(str(settings.database_url))
    try:
        _, admin = keys.create("ops", "admin")
    finally:
        keys.close()
    with api_client(settings) as api:
        body = [
            ev("h1", "web_visit", "2026-02-01T10:00:00Z", anonymous="tab", url="https://x/1"),
            ev("h2", "purchase", "2026-02-01T10:05:00Z", customer="c-h", anonymous="tab",
               order_id="o1", amount=12.0),
        ]  # fmt: skip
        assert api.post(body).json()["accepted"] == 2
        run(engine)
        seen = api.get("/v1/customers/tab").json()
        assert seen["person_id"] == "c-h" and seen["event_count"] == 2
        found = api.get("/v1/customers", params={"q": "tab"}).json()["items"]
        assert found[0]["customer_id"] == "c-h"  # the dashboard's search finds the person
        timeline = api.get("/v1/customers/tab/timeline").json()
        assert {i["event_id"] for i in timeline["items"] if i["kind"] == "touchpoint"} == {
            "h1",
            "h2",
        }
        links = api.get("/v1/identity/tab").json()
        assert links["person_id"] == "c-h"
        assert {i["value"] for i in links["identifiers"]} == {"c-h", "tab"}
        assert api.get("/v1/identity/nobody").status_code == 404
        url = "/v1/identity/c-h/unlink"
        payload = {"identifier": "tab", "reason": "shared tablet"}
        assert (
            api.client.post(
                url, json=payload, headers={"Authorization": f"Bearer {api.read_key}"}
            ).status_code
            == 403
        )
        done = api.client.post(url, json=payload, headers={"Authorization": f"Bearer {admin}"})
        assert done.status_code == 200, done.text
        run(engine)
        assert api.get("/v1/customers/c-h").json()["event_count"] == 1
        assert api.get("/v1/customers/tab").json()["person_id"] == "tab"


def test_the_cli_reads_by_any_identifier_shows_links_and_unlinks(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            lines(
                ev("t1", "web_visit", "2026-02-01T10:00:00Z", anonymous="cookie", url="https://x"),
                ev("t2", "identify", "2026-02-01T10:01:00Z", customer="c-t", anonymous="cookie",
                   email="Tess@Example.com"),
                ev("t3", "purchase", "2026-02-01T10:02:00Z", customer="c-t", order_id="o",
                   amount=9.5),
            )
        )
        + "\n"
    )  # fmt: skip
    assert engage_cli(cli_env, "publish", str(path)).returncode == 0
    assert (
        engage_cli(cli_env, "run", "--until-idle", "--now", "2026-03-01T00:00:00Z").returncode == 0
    )
    for name in ("cookie", "tess@example.com", "c-t"):
        shown = engage_cli(cli_env, "profile", name, "--json")
        assert shown.returncode == 0, shown.stderr
        view = orjson.loads(shown.stdout)
        assert (view["person_id"], view["event_count"]) == ("c-t", 3)
        assert {"kind": "anonymous_id", "value": "cookie"} in view["identifiers"]
    past = engage_cli(cli_env, "profile", "cookie", "--as-of", "2026-02-01T10:01:30Z", "--json")
    assert orjson.loads(past.stdout)["event_count"] == 2
    timeline = engage_cli(cli_env, "timeline", "cookie", "--json")
    items = [orjson.loads(x) for x in timeline.stdout.splitlines()]
    assert [i["event_id"] for i in items if i["kind"] == "touchpoint"] == ["t1", "t2", "t3"]
    links = engage_cli(cli_env, "identity", "cookie", "--json")
    assert links.returncode == 0, links.stderr
    person = orjson.loads(links.stdout)
    assert person["person_id"] == "c-t"
    by_value = {i["value"]: i for i in person["identifiers"]}
    assert by_value["cookie"]["evidence"] == "t2"
    table = engage_cli(cli_env, "identity", "c-t")
    assert "cookie" in table.stdout and "t2" in table.stdout
    missing = engage_cli(cli_env, "identity", "nobody")
    assert missing.returncode != 0 and "nobody" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_reason = engage_cli(cli_env, "identity", "unlink", "c-t", "cookie")
    assert no_reason.returncode != 0 and "--reason" in no_reason.stderr
    done = engage_cli(cli_env, "identity", "unlink", "c-t", "cookie", "--reason", "shared")
    assert done.returncode == 0, done.stderr
    assert (
        engage_cli(cli_env, "run", "--until-idle", "--now", "2026-03-01T00:00:00Z").returncode == 0
    )
    view = orjson.loads(engage_cli(cli_env, "profile", "cookie", "--json").stdout)
    assert (view["person_id"], view["event_count"]) == ("cookie", 1)
    view = orjson.loads(engage_cli(cli_env, "profile", "c-t", "--json").stdout)
    assert view["event_count"] == 2


def test_erasing_a_merged_person_erases_every_key_of_it(engine: Engine) -> None:
    from engage.erasure import erase

    publish(
        engine,
        lines(
            ev("x1", "web_visit", "2026-02-01T10:00:00Z", anonymous="dev-x", url="https://x/me"),
            ev("x2", "identify", "2026-02-01T10:05:00Z", customer="c-x", anonymous="dev-x",
               email="x@example.com"),
        ),
    )  # fmt: skip
    run(engine)
    assert engine.keys.key_info("dev-x") is not None
    receipt = erase(engine, "c-x", "ticket 1")
    assert any(s["store"] == "identity: linked identifiers" for s in receipt.stores)
    assert engine.keys.key_info("dev-x") is None and engine.keys.key_info("c-x") is None
    assert engine.identity.find("dev-x") is None and engine.identity.find("x@example.com") is None
    run(engine)
    assert engine.customer_view("c-x") is None
