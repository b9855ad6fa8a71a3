"""Issue 11 through the HTTP API, as an attacker with an ingest key ran it:
client errors are 4xx in the JSON error shape, never a 5xx, and a hostile
event costs only itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.http_support import Api, api_client

GOOD = "2026-03-01T10:00:00Z"


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with api_client(settings, ServeConfig(process=False, deliver=False, pool_size=2)) as client:
        yield client


def _raw_event(event_id: str, props: str, type_: str = "web_visit") -> str:
    return (
        f'{{"event_id":"{event_id}","customer_id":"c1","type":"{type_}",'
        f'"occurred_at":"{GOOD}","properties":{props}}}'
    )


def test_a_hostile_batch_costs_only_its_hostile_events(api: Api, engine: Engine) -> None:
    """Defects 1-3: deep traits gave a plain-text 500 and dropped the batch;
    items 1,000 deep gave a 503 (retry a permanent error) and dropped it; a
    year-9999 event was accepted."""
    deep = "[" * 300 + "]" * 300
    body = (
        "["
        + ",".join(
            [
                _raw_event("ok1", '{"url":"u"}'),
                _raw_event("bad-traits", '{"traits":{"t":' + deep + "}}", "identify"),
                _raw_event(
                    "bad-items",
                    '{"order_id":"o","amount":1,"items":' + "[" * 1000 + "]" * 1000 + "}",
                    "purchase",
                ),
                orjson.dumps(
                    event("bad-time", "c1", "web_visit", "9999-12-31T00:00:00Z", url="u")
                ).decode(),
                _raw_event("ok2", '{"url":"u","junk":' + "[" * 32 + "]" * 32 + "}"),
            ]
        )
        + "]"
    )
    for attempt in range(2):
        r = api.post(body.encode())
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["accepted"], out["duplicate"], out["rejected"]) == (
            (2, 0, 3) if attempt == 0 else (0, 2, 3)
        )
        statuses = [(x["event_id"], x["status"], x.get("field")) for x in out["results"]]
        assert statuses == [
            ("ok1", "accepted" if attempt == 0 else "duplicate", None),
            ("bad-traits", "rejected", "properties.traits"),
            ("bad-items", "rejected", "properties.items"),
            ("bad-time", "rejected", "occurred_at"),
            ("ok2", "accepted" if attempt == 0 else "duplicate", None),  # 32 levels: the limit
        ]
    assert engine.dead_letters.count() == 6  # each attempt's rejections, once each


def test_invalid_utf8_gets_a_clear_message(api: Api) -> None:
    """Defect 10: the answer was "surrogates not allowed"."""
    r = api.post(b'{"event_id":"\xff\xfe"}')
    assert r.status_code == 400
    assert "not valid UTF-8" in r.json()["error"] and "byte 13" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers/a%00b",
        "/v1/customers/a%00b/timeline",
        "/v1/customers?q=%00",
        "/v1/triggers?customer_id=x%00",
        "/v1/triggers?rule_id=%00",
    ],
)
def test_a_nul_in_a_read_is_a_400_not_a_database_outage(api: Api, path: str) -> None:
    """Defect 6: 503 "database unavailable", and the engine reconnected."""
    r = api.get(path)
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["error"]
    assert api.get("/healthz").status_code == 200


def test_a_cursor_beyond_int64_is_a_400(api: Api) -> None:
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps({"0": 2**64}).encode()).decode().rstrip("=")
    r = api.get(f"/v1/triggers?cursor={cursor}")
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = api.get("/v1/dlq?before=99999999999999999999")
    assert r.status_code == 422 and "error" in r.json()


def test_unaddressable_customer_ids_are_refused_at_ingest(api: Api) -> None:
    """Defect 6: ids with / or .. were accepted and then could not be read."""
    for customer_id in ("shop/1", "..", "."):
        r = api.post(event("x" + customer_id, customer_id, "web_visit", GOOD, url="u"))
        assert r.status_code == 422
        assert r.json()["results"][0]["field"] == "customer_id"


def test_html_gets_security_headers(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert api.get("/v1/status").headers["x-content-type-options"] == "nosniff"
    docs = api.client.get("/docs")  # its viewer comes from a CDN with an inline starter
    assert docs.status_code == 200 and docs.headers["x-frame-options"] == "DENY"
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_timeline_is_paginated(api: Api, engine: Engine) -> None:
    """Defect 10: 100,000 events were one 37 MB response."""
    rows = lines(
        *(
            event(
                f"v{i:05d}", "busy", "web_visit", f"2026-02-{1 + i // 1000:02d}T00:00:00Z", url="u"
            )
            for i in range(2_500)
        )
    )
    assert publish(engine, rows).accepted == 2_500
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        r = api.get("/v1/customers/busy/timeline", params={"cursor": cursor} if cursor else {})
        assert r.status_code == 200
        body: dict[str, Any] = r.json()
        assert len(body["items"]) <= 1_000
        seen.extend(i["event_id"] for i in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 2_500 and len(set(seen)) == 2_500
    small = api.get("/v1/customers/busy/timeline", params={"limit": 10}).json()
    assert len(small["items"]) == 10 and small["next_cursor"] == "10"
    assert api.get("/v1/customers/busy/timeline", params={"cursor": "x"}).status_code == 400


def test_dlq_pages_stay_small_and_page_backwards(api: Api) -> None:
    """Defect 5: twenty 5 MiB junk bodies made `GET /v1/dlq?limit=20` 105 MB."""
    junk = b"\x01" + b"z" * (2 * 1024 * 1024)
    for _ in range(3):
        assert api.post(junk).status_code == 400
    r = api.get("/v1/dlq", params={"limit": 2})
    body = r.json()
    assert len(r.content) < 100_000
    assert body["total"] == 3 and len(body["items"]) == 2
    assert all(d["truncated"] and d["raw_bytes"] == len(junk) for d in body["items"])
    older = api.get("/v1/dlq", params={"limit": 2, "before": body["next_before"]}).json()
    assert len(older["items"]) == 1 and older["next_before"] is None


def test_an_unexpected_error_still_answers_json() -> None:
    """Defect 2 answered a plain-text 500: whatever the bug, the shape holds."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from engage.http.security import harden

    app = FastAPI()
    harden(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal error; the server log has the details"}
