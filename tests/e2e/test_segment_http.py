"""Segment's HTTP answers in the cases the SDK tests do not reach: overload,
gzip gone wrong, the key in each of its three places, and what lands in the DLQ."""

from __future__ import annotations

import base64
import gzip

import orjson

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.http_support import api_client

T = "2026-03-01T10:00:00Z"
MSG = {"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": T, "messageId": "m1"}


def test_overload_answers_429_with_retry_after(settings: Settings) -> None:
    config = ServeConfig(process=False, deliver=False, pool_size=1, max_ingest_inflight=0)
    with api_client(settings, config) as api:
        auth = {"Authorization": f"Bearer {api.ingest_key}"}
        busy = api.client.post("/v1/batch", json={"batch": [MSG]}, headers=auth)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        assert busy.json()["code"] == "too_many_requests"


def test_the_key_in_basic_auth_bearer_or_the_body(settings: Settings) -> None:
    with api_client(settings) as api:
        basic = base64.b64encode(f"{api.ingest_key}:".encode()).decode()
        for i, headers, extra in (
            (1, {"Authorization": f"Basic {basic}"}, {}),
            (2, {"Authorization": f"Bearer {api.ingest_key}"}, {}),
            (3, {}, {"writeKey": api.ingest_key}),
        ):
            body = {"batch": [{**MSG, "messageId": f"k{i}"}], **extra}
            answer = api.client.post("/v1/batch", json=body, headers=headers)
            assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        wrong = base64.b64encode(b"egk_i_wrong:").decode()
        answer = api.client.post(
            "/v1/batch", json={"batch": [MSG]}, headers={"Authorization": f"Basic {wrong}"}
        )
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"


def test_gzip_bodies_bombs_and_broken_gzip(settings: Settings, engine: Engine) -> None:
    with api_client(settings) as api:
        auth = {"Authorization": f"Bearer {api.ingest_key}", "Content-Encoding": "gzip"}
        good = gzip.compress(orjson.dumps({"batch": [MSG]}))
        assert api.client.post("/v1/batch", content=good, headers=auth).json()["accepted"] == 1
        bomb = gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")
        assert len(bomb) < 500 * 1024
        answer = api.client.post("/v1/batch", content=bomb, headers=auth)
        assert answer.status_code == 400 and answer.json()["code"] == "too_large"
        broken = api.client.post("/v1/batch", content=b"not gzip", headers=auth)
        assert broken.status_code == 400 and broken.json()["code"] == "invalid_gzip"


def test_a_rejected_message_is_200_and_in_the_dlq_with_its_place(
    settings: Settings, engine: Engine
) -> None:
    with api_client(settings) as api:
        auth = {"Authorization": f"Bearer {api.ingest_key}"}
        bad = {
            **MSG,
            "messageId": "m2",
            "event": "Order Completed",
            "properties": {"order_id": "o", "total": -3},
        }
        answer = api.client.post("/v1/batch", json={"batch": [MSG, bad]}, headers=auth)
        assert answer.status_code == 200
        assert answer.json() == {"success": True, "accepted": 1, "duplicate": 0, "rejected": 1}
        not_a_batch = api.client.post("/v1/batch", json=[MSG], headers=auth)
        assert not_a_batch.status_code == 400
    (letter,) = [d for d in engine.dead_letters.list() if d.event_id == "m2"]
    assert (letter.source, letter.line_no, letter.field) == ("http:shop", 2, "properties.total")
    assert orjson.loads(letter.raw) == bad
