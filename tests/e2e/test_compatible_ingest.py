"""The real Segment and RudderStack SDKs, unchanged, and the CloudEvents SDK,
sending to a real ``engage serve`` given only its host and an ingest key."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.e2e.test_cli import engage
from tests.http_support import wait_for

T = "2026-03-01T10:00:00+00:00"


@dataclass
class Server:
    url: str
    key: str
    read_key: str
    env: dict[str, str]

    def profile(self, customer_id: str) -> dict[str, Any]:
        ran = engage(self.env, "run", "--until-idle")
        assert ran.returncode == 0, ran.stderr
        shown = engage(self.env, "profile", customer_id, "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(orjson.loads(shown.stdout))

    def dead_letters(self) -> list[dict[str, Any]]:
        out = engage(self.env, "dlq", "--json").stdout
        return [orjson.loads(line) for line in out.splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    key = engage(cli_env, "keys", "create", "shop", "-q").stdout.strip()
    read_key = engage(cli_env, "keys", "create", "dash", "--scope", "read", "-q").stdout.strip()
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "serve", "--port", str(port), "--no-process"],
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, 60, "engage serve")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield Server(url, key, read_key, cli_env)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _send(client: Any, errors: list[Any]) -> None:
    """One history through an SDK: identify, spec and custom tracks, a page,
    an anonymous visitor and its alias, and a repeated messageId."""
    client.identify("u1", {"email": "ada@example.com", "name": "Ada"}, timestamp=_t(0))
    client.track("u1", "Order Completed", {"order_id": "o1", "revenue": 25.5}, timestamp=_t(1))
    client.track("u1", "Email Opened", {"campaign_id": "spring"}, timestamp=_t(2))
    client.track("u1", "Product Viewed", {"name": "Shoe", "sku": "s-1"}, timestamp=_t(3))
    for _ in range(2):  # an SDK retry: the same messageId twice
        client.track("u1", "Product Viewed", {"sku": "s-2"}, timestamp=_t(4), message_id="dup-1")
    client.page("u1", name="Home", properties={"url": "https://shop.test/"}, timestamp=_t(5))
    client.track(event="Cart Abandoned", anonymous_id="anon-9", timestamp=_t(6))
    client.alias("anon-9", "u1", timestamp=_t(7))
    client.track("u1", "Order Completed", {"order_id": "bad"}, timestamp=_t(8))  # no amount
    client.flush()
    assert errors == []


def _t(minute: int) -> Any:
    from datetime import datetime, timedelta

    return datetime.fromisoformat(T) + timedelta(minutes=minute)


def _check(server: Server) -> None:
    u1 = server.profile("u1")
    assert u1["counts_by_type"] == {
        "custom": 3,
        "email_opened": 1,
        "identify": 1,
        "purchase": 1,
        "web_visit": 1,
    }
    assert u1["custom_counts"] == {"Product Viewed": 2, "identity-alias": 1}
    assert u1["lifetime_spend"] == 25.5
    anon = server.profile("anon-9")
    assert anon["custom_counts"] == {"Cart Abandoned": 1}
    bad = [d for d in server.dead_letters() if d["field"] == "properties.revenue"]
    assert len(bad) == 1 and '"order_id":"bad"' in bad[0]["raw"]


def test_segment_sdk(server: Server) -> None:
    errors: list[Any] = []
    client = SegmentClient(server.key, host=server.url, on_error=lambda e, _b: errors.append(e))
    _send(client, errors)
    client.shutdown()
    _check(server)


def test_rudderstack_sdk_gzips_by_default(server: Server) -> None:
    errors: list[Any] = []
    client = RudderClient(server.key, host=server.url, on_error=lambda e, _b: errors.append(e))
    assert client.gzip
    _send(client, errors)
    client.shutdown()
    _check(server)


@pytest.mark.parametrize("sdk", [SegmentClient, RudderClient])
def test_a_wrong_key_is_refused_and_reported_to_the_sdk(server: Server, sdk: Any) -> None:
    errors: list[Any] = []
    client = sdk("egk_i_not-a-key", host=server.url, on_error=lambda e, _b: errors.append(e))
    client.track("u2", "Order Completed", {"order_id": "o", "total": 1})
    client.flush()
    client.shutdown()
    assert [getattr(e, "status", None) for e in errors] == [401]
    assert server.dead_letters() == []  # an unauthenticated sender leaves nothing
    assert engage(server.env, "run", "--until-idle").returncode == 0
    assert engage(server.env, "profile", "u2").returncode != 0  # nothing stored


def test_segment_http_answers(server: Server) -> None:
    msg = {"userId": "u3", "event": "Signed Up", "timestamp": T, "messageId": "m-3"}
    auth = {"Authorization": f"Bearer {server.key}"}
    ok = httpx.post(f"{server.url}/v1/track", json=msg, headers=auth)
    assert ok.status_code == 200 and ok.json()["success"] is True
    again = httpx.post(f"{server.url}/v1/track", json={**msg, "writeKey": server.key})
    assert again.status_code == 200 and again.json()["duplicate"] == 1
    bad_json = httpx.post(f"{server.url}/v1/batch", content=b"{nope", headers=auth)
    assert bad_json.status_code == 400 and "code" in bad_json.json()
    big = {**msg, "properties": {"blob": "x" * 40_000}}
    assert httpx.post(f"{server.url}/v1/track", json=big, headers=auth).status_code == 400
    batch = {"batch": [{**msg, "type": "track", "messageId": "m-4"}, {**big, "type": "track"}]}
    mixed = httpx.post(f"{server.url}/v1/batch", json=batch, headers=auth)
    assert mixed.status_code == 200 and mixed.json()["rejected"] == 1
    no_key = httpx.post(f"{server.url}/v1/track", json=msg)
    assert no_key.status_code == 401
    read = httpx.post(f"{server.url}/v1/track", json={**msg, "writeKey": server.read_key})
    assert read.status_code == 403


def test_cloudevents_sdk(server: Server) -> None:
    auth = {"Authorization": f"Bearer {server.key}"}
    when = _t(0)
    purchase = CloudEvent(
        {
            "type": "com.example.shop.purchase",
            "source": "https://shop.example/",
            "subject": "u4",
            "id": "ce-1",
            "time": when,
        },
        {"order_id": "o-9", "amount": 12},
    )
    message = to_structured_event(purchase)
    one = httpx.post(
        f"{server.url}/v1/events", content=message.body, headers={**message.headers, **auth}
    )
    assert one.status_code == 200, one.text
    assert one.json()["accepted"] == 1
    viewed = CloudEvent(
        {"type": "Product Viewed", "source": "app", "subject": "u4", "id": "ce-2", "time": when},
        {"sku": "s-1"},
    )
    nameless = CloudEvent({"type": "purchase", "source": "app", "id": "ce-3", "time": when}, {})
    batch = b"[" + b",".join(JSONFormat().write(e) for e in (viewed, nameless)) + b"]"
    many = httpx.post(
        f"{server.url}/v1/events",
        content=batch,
        headers={"Content-Type": "application/cloudevents-batch+json", **auth},
    )
    assert many.status_code == 200, many.text
    assert [r["status"] for r in many.json()["results"]] == ["accepted", "rejected"]
    assert many.json()["results"][1]["field"] == "subject"
    u4 = server.profile("u4")
    assert u4["lifetime_spend"] == 12 and u4["custom_counts"] == {"Product Viewed": 1}
