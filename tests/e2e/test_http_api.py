"""The HTTP API in process (FastAPI's TestClient over the real app and a real
PostgreSQL): auth and scopes, ingest results and dead letters, size limits,
bad input, customers, the trigger feed, metrics."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson
import pytest

from engage.config import Settings
from engage.http.keys import ApiKeys
from engage.http.routes.contact import CSV_COLUMNS
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from events.control import model_entries
from events.log import TOUCHPOINTS
from tests.e2e.test_cli import CONTRACT_KEYS
from tests.helpers import event
from tests.http_support import Api, api_client


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with api_client(settings) as client:
        yield client


def _purchase(eid: str, cid: str, when: str = "2026-03-01T10:00:00Z", amount: float = 50) -> dict:
    return event(eid, cid, "purchase", when, order_id=f"o-{eid}", amount=amount)


def _nothing_written(engine: Engine) -> None:
    assert sum(engine.log.heads(TOUCHPOINTS).values()) == 0
    assert engine.dead_letters.count() == 0


def test_missing_wrong_and_revoked_keys_are_401_and_write_nothing(
    api: Api, engine: Engine, settings: Settings
) -> None:
    body = [_purchase("e1", "ann")]
    missing = api.client.post("/v1/events", json=body)
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = api.post(body, key="egk_i_not-a-key")
    assert wrong.status_code == 401 and wrong.json()["error"] == "unknown or revoked API key"
    not_bearer = api.client.post("/v1/events", json=body, headers={"Authorization": "Basic x"})
    assert not_bearer.status_code == 401
    keys = ApiKeys(str(settings.database_url))
    try:
        _, key = keys.create("old-shop", "ingest")
        assert api.post(body, key=key).status_code == 200
        keys.revoke("old-shop")
    finally:
        keys.close()
    assert api.post([_purchase("e2", "ann")], key=key).status_code == 401
    assert sum(engine.log.heads(TOUCHPOINTS).values()) == 1  # only the pre-revoke post


def test_wrong_scope_is_403_and_writes_or_shows_nothing(api: Api, engine: Engine) -> None:
    refused = api.post([_purchase("e1", "ann")], key=api.read_key)
    assert refused.status_code == 403
    assert "needs an ingest key" in refused.json()["error"]
    _nothing_written(engine)
    assert api.post([_purchase("e1", "ann")]).status_code == 200
    engine.processor().run(until_idle=True)
    for path in ("/v1/customers/ann", "/v1/customers/ann/timeline", "/v1/triggers", "/v1/dlq"):
        shown = api.get(path, key=api.ingest_key)
        assert shown.status_code == 403, path
        assert set(shown.json()) == {"error"}, path
        assert api.get(path).status_code == 200, path


def test_batch_results_duplicates_and_dead_letters(api: Api, engine: Engine) -> None:
    bad = {
        "event_id": "e3",
        "customer_id": "ann",
        "type": "purchase",
        "occurred_at": "2026-03-01T10:00:00Z",
        "properties": {"order_id": "o", "amount": -5},
    }
    body = [_purchase("e1", "ann"), _purchase("e2", "bob"), bad, _purchase("e1", "ann"), 7]
    response = api.post(body)
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["duplicate"], result["rejected"]) == (2, 1, 2)
    statuses = [(r["index"], r["event_id"], r["status"]) for r in result["results"]]
    assert statuses == [
        (0, "e1", "accepted"),
        (1, "e2", "accepted"),
        (2, "e3", "rejected"),
        (3, "e1", "duplicate"),
        (4, None, "rejected"),
    ]
    assert result["results"][2]["field"] == "properties.amount"
    assert "0 or more" in result["results"][2]["reason"]
    letters = engine.dead_letters.list()
    assert [(d.source, d.line_no, d.field) for d in letters] == [
        ("http:shop", 3, "properties.amount"),
        ("http:shop", 5, "(event)"),
    ]
    assert orjson.loads(letters[0].raw) == bad
    again = api.post([_purchase("e2", "bob")]).json()
    assert again["results"][0]["status"] == "duplicate"
    # an event without a source is attributed to the key's name
    engine.processor().run(until_idle=True)
    timeline = api.get("/v1/customers/ann/timeline").json()
    assert timeline["items"][0]["source"] == "shop"


def test_single_event_rejected_is_422_and_dead_lettered(api: Api, engine: Engine) -> None:
    response = api.post(
        {
            "event_id": "x",
            "customer_id": "ann",
            "type": "nope",
            "occurred_at": "2026-03-01T10:00:00Z",
        }
    )
    assert response.status_code == 422
    assert response.json()["error"].startswith("type: unknown type 'nope'")
    assert engine.dead_letters.count() == 1
    ok = api.post(_purchase("e1", "ann"))
    assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "accepted"


def test_bad_json_and_bad_shapes(api: Api, engine: Engine) -> None:
    broken = api.post(b'{"event_id": "e1", ')
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("request body is not valid JSON")
    letters = engine.dead_letters.list()
    assert letters[-1].field == "(body)" and letters[-1].raw == '{"event_id": "e1", '
    scalar = api.post(b"42")
    assert scalar.status_code == 422
    assert "event object or an array" in scalar.json()["error"]
    empty = api.post(b"")
    assert empty.status_code == 400
    assert api.post([]).json() == {"accepted": 0, "duplicate": 0, "rejected": 0, "results": []}
    # found by schemathesis: a NUL in an id used to crash the dead-letter write
    nul = api.post([_purchase("a\u0000b", "ann"), _purchase("x", "a\u0000b")])
    assert nul.status_code == 200
    assert [r["reason"] for r in nul.json()["results"]] == [
        "must not contain NUL (\\u0000) characters"
    ] * 2
    assert engine.dead_letters.list()[-2].event_id == "a\\u0000b"
    assert sum(engine.log.heads(TOUCHPOINTS).values()) == 0


def test_size_limits(settings: Settings, engine: Engine) -> None:
    config = ServeConfig(process=False, deliver=False, pool_size=1, max_body=4096, max_events=3)
    with api_client(settings, config) as api:
        big = api.post([_purchase(f"e{i}", "ann") for i in range(40)])
        assert big.status_code == 413 and "4096 bytes" in big.json()["error"]
        # without a Content-Length the streamed body is counted as it arrives
        chunks = iter([b"[" + b" " * 3000, b" " * 3000 + b"]"])
        streamed = api.client.post(
            "/v1/events",
            content=chunks,
            headers={"Authorization": f"Bearer {api.ingest_key}"},
        )
        assert streamed.status_code == 413
        many = api.post([_purchase(f"e{i}", "ann") for i in range(4)])
        assert many.status_code == 413 and "at most 3 events" in many.json()["error"]
        _nothing_written(engine)
        assert api.post([_purchase(f"e{i}", "ann") for i in range(3)]).status_code == 200


def test_customer_360_as_of_timeline_and_search(api: Api, engine: Engine) -> None:
    api.post(
        [
            _purchase("e1", "ann", "2026-03-01T10:00:00Z", 40),
            _purchase("e2", "ann", "2026-03-10T10:00:00Z", 60),
            _purchase("e3", "anna", "2026-03-02T10:00:00Z", 5),
        ]
    )
    engine.processor().run(until_idle=True)
    view = api.get("/v1/customers/ann").json()
    assert set(view) >= CONTRACT_KEYS
    assert view["lifetime_spend"] == 100 and view["order_count"] == 2
    past = api.get("/v1/customers/ann", params={"as_of": "2026-03-05T00:00:00Z"}).json()
    assert past["lifetime_spend"] == 40 and past["order_count"] == 1
    assert api.get("/v1/customers/ann", params={"as_of": "2026-02-01T00:00:00Z"}).status_code == 404
    bad = api.get("/v1/customers/ann", params={"as_of": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("as_of:")
    missing = api.get("/v1/customers/nobody")
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]
    # the predictions: null before a model is fitted, then judged at the clock
    assert view["p_alive"] is None and view["churn_risk"] is None
    params = {"r": 0.24, "alpha": 30.9, "a": 0.79, "b": 2.43, "p": 6.25, "q": 3.74, "gamma": 15.4}
    engine.log.append(TOUCHPOINTS, model_entries(1, params, 0, engine.partitions))
    engine.processor().run(until_idle=True)
    predicted = api.get("/v1/customers/ann").json()
    assert 0 < predicted["p_alive"] <= 1 and predicted["churn_risk"] in ("low", "medium", "high")
    assert predicted["expected_purchases_90d"] > 0 and predicted["predicted_clv_365d"] > 0
    assert predicted["model_version"] == 1
    items = api.get("/v1/customers/ann/timeline").json()["items"]
    kinds = [(i["kind"], i.get("event_id") or i["trigger"]["rule_id"]) for i in items]
    assert kinds[:2] == [("touchpoint", "e1"), ("trigger", "first-purchase-thank-you")]
    assert kinds[2] == ("touchpoint", "e2")
    assert api.get("/v1/customers/nobody/timeline").status_code == 404
    hits = api.get("/v1/customers", params={"q": "an"}).json()["items"]
    assert [h["customer_id"] for h in hits] == ["ann", "anna"]
    assert api.get("/v1/customers", params={"q": "%"}).json()["items"] == []


def test_trigger_feed_pages_with_a_cursor_and_filters(api: Api, engine: Engine) -> None:
    customers = [f"c{i:02d}" for i in range(9)]
    api.post([_purchase(f"p-{c}", c) for c in customers])
    engine.processor().run(until_idle=True)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/triggers", params=params).json()
        assert len(page["items"]) <= 2
        seen += [t["customer_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not page["items"]:
            break
    assert sorted(seen) == customers  # every trigger exactly once across pages
    # polling from where it stopped: nothing new, then exactly the new ones
    assert api.get("/v1/triggers", params={"cursor": cursor}).json()["items"] == []
    api.post([_purchase("p-new", "newbie"), *[_purchase(f"q-{c}", c) for c in customers]])
    engine.processor().run(until_idle=True)
    fresh = api.get("/v1/triggers", params={"cursor": cursor}).json()["items"]
    assert [t["customer_id"] for t in fresh] == ["newbie"]
    latest = api.get("/v1/triggers", params={"cursor": "latest"}).json()
    assert latest["items"] == []
    only = api.get("/v1/triggers", params={"rule_id": "nope"}).json()
    assert only["items"] == []
    kind = api.get("/v1/triggers", params={"kind": "thank_you", "customer_id": "c03"}).json()
    assert [t["customer_id"] for t in kind["items"]] == ["c03"]
    assert set(kind["items"][0]) == {
        "trigger_id",
        "rule_id",
        "rule_version",
        "kind",
        "customer_id",
        "fired_at",
        "caused_by",
        "details",
        "arm",
    }
    assert api.get("/v1/triggers", params={"cursor": "garbage!"}).status_code == 400
    assert api.get("/v1/triggers", params={"limit": 0}).status_code == 422
    stats = api.get("/v1/triggers/stats").json()
    assert stats["totals"] == {"first-purchase-thank-you": 10}


def test_who_to_contact_now_newest_first_filtered_and_as_csv(api: Api, engine: Engine) -> None:
    api.post(
        [
            _purchase("a1", "ann", "2026-03-01T10:00:00Z"),
            _purchase("b1", "bob", "2026-03-02T10:00:00Z"),
            _purchase("c1", "cid", "2026-03-03T10:00:00Z", amount=1200),  # also crosses 1,000
        ]
    )
    engine.processor().run(until_idle=True)
    assert api.get("/v1/triggers/latest", key=api.ingest_key).status_code == 403
    latest = api.get("/v1/triggers/latest").json()
    assert [(t["customer_id"], t["rule_id"]) for t in latest["items"]][-3:] == [
        ("cid", "first-purchase-thank-you"),
        ("bob", "first-purchase-thank-you"),
        ("ann", "first-purchase-thank-you"),
    ]
    fired = [t["fired_at"] for t in latest["items"]]
    assert fired == sorted(fired, reverse=True)  # newest first
    by_rule = api.get("/v1/triggers/latest", params={"rule_id": "lifetime-spend-1000"}).json()
    assert [t["customer_id"] for t in by_rule["items"]] == ["cid"]
    assert by_rule["items"][0]["details"]["lifetime_spend"] == 1200
    by_kind = api.get("/v1/triggers/latest", params={"kind": "spend_threshold"}).json()
    assert {t["rule_id"] for t in by_kind["items"]} == {"lifetime-spend-1000", "monthly-spend-500"}
    assert {t["kind"] for t in by_kind["items"]} == {"spend_threshold"}
    window = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}
    in_window = api.get("/v1/triggers/latest", params=window).json()
    assert [t["customer_id"] for t in in_window["items"]] == ["bob"]
    assert len(api.get("/v1/triggers/latest", params={"limit": 1}).json()["items"]) == 1
    backwards = {"since": "2026-03-03T00:00:00Z", "until": "2026-03-02T00:00:00Z"}
    assert api.get("/v1/triggers/latest", params=backwards).status_code == 422
    assert api.get("/v1/triggers/latest", params={"since": "soon"}).status_code == 422
    csv_response = api.get("/v1/triggers/latest", params={**window, "format": "csv"})
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_response.text)))
    assert rows[0] == list(CSV_COLUMNS)
    assert CSV_COLUMNS[:4] == ("fired_at", "customer_id", "rule_id", "kind")
    assert [r[1:4] for r in rows[1:]] == [["bob", "first-purchase-thank-you", "thank_you"]]
    assert orjson.loads(rows[1][4])["order_id"] == "o-b1" and rows[1][5] == "b1"


def test_health_metrics_status_and_openapi(api: Api, engine: Engine) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    api.post([_purchase("e1", "ann"), {"event_id": "bad"}])
    engine.processor().run(until_idle=True)
    status = api.get("/v1/status").json()
    assert status == {
        "log_events": 1,
        "triggers": 1,
        "profiles": 1,
        "dead_letters": 1,
        "lag": 0,
        "clock": "2026-03-01T10:00:00Z",
    }
    text = api.client.get("/metrics").text
    assert 'engage_http_ingest_events_total{result="accepted"} 1.0' in text
    assert "engage_dlq_size 1.0" in text
    assert 'engage_triggers_total{rule_id="first-purchase-thank-you"} 1.0' in text
    assert 'engage_consumer_lag{consumer="engage-processor"} 0.0' in text
    assert "engage_log_events_total 1.0" in text
    spec = api.client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/customers/{customer_id}", "/v1/triggers", "/healthz"} <= set(
        spec["paths"]
    )
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    page = api.client.get("/")
    assert page.status_code == 200 and "Engage dashboard" in page.text
    assert api.client.get("/static/app.js").status_code == 200
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text and "https://" not in docs.text  # nothing from the internet
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert api.client.get(f"/docs/assets/{asset}").status_code == 200
    assert api.client.get("/redoc").status_code == 404  # it would load from a CDN


def test_kpis_are_the_processor_kept_report_with_a_pyramid(api: Api, engine: Engine) -> None:
    from consumers.pipeline import DEFAULT_CONSUMER
    from projections.adapters.postgres_kpis import read_kpis

    api.post(
        [
            _purchase("e1", "ann", "2026-03-02T10:00:00Z", 40),
            _purchase("e2", "bob", "2026-03-03T10:00:00Z", 60),
            event("e3", "bob", "survey_response", "2026-03-04T10:00:00Z", survey="nps", score=10),
        ]
    )
    engine.processor().run(until_idle=True)
    assert api.get("/v1/kpis", key=api.ingest_key).status_code == 403
    got = api.get("/v1/kpis", params={"by": "day"}).json()
    pyramid = got.pop("pyramid")
    assert got.pop("currency") == "USD"  # ENGAGE_CURRENCY, for showing money
    assert got == orjson.loads(orjson.dumps(read_kpis(engine.dsn, DEFAULT_CONSUMER, "day")))
    assert [level["name"] for level in pyramid][:2] == [
        "Business (all time)",
        "Channels (net revenue, all time)",
    ]
    business = dict(pyramid[0]["values"])
    assert business == {"net revenue": 100.0, "active customers": 2, "NPS": 100.0}
    per_customer = dict(pyramid[-1]["values"])
    assert per_customer["net revenue"] == 50.0 and per_customer["orders"] == 1.0
    last = api.get("/v1/kpis", params={"by": "day", "last": 1}).json()
    assert [p["period"] for p in last["periods"]] == ["2026-03-04"]
    assert api.get("/v1/kpis", params={"by": "year"}).status_code == 422


def test_the_server_reconnects_after_the_database_drops_its_connections(
    settings: Settings, engine: Engine
) -> None:
    import psycopg

    config = ServeConfig(process=False, deliver=False, pool_size=1)
    with api_client(settings, config) as api:
        assert api.post([_purchase("e1", "ann")]).status_code == 200
        with psycopg.connect(engine.dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        first = api.get("/v1/status")
        assert first.status_code in (200, 503)  # the request in flight may fail...
        if first.status_code == 503:
            assert first.json() == {"error": "the database is unavailable; retry shortly"}
        assert api.get("/v1/status").status_code == 200  # ...the server does not
        assert api.post([_purchase("e2", "ann")]).json()["accepted"] == 1


def test_the_api_works_with_kafka_as_the_log(kafka_settings: Settings) -> None:
    """Ingest lands on the Kafka topic, the processor reads it from there, and
    the customer and the trigger feed are served from what it wrote."""
    with Engine.open(kafka_settings) as kafka_engine, api_client(kafka_settings) as api:
        assert kafka_engine.kafka is not None
        posted = api.post([_purchase("k1", "kim"), {"event_id": "k2", "customer_id": "kim"}])
        assert posted.status_code == 200
        assert [r["status"] for r in posted.json()["results"]] == ["accepted", "rejected"]
        assert sum(kafka_engine.kafka.heads(TOUCHPOINTS).values()) == 1
        assert sum(kafka_engine.log.heads(TOUCHPOINTS).values()) == 0  # not the PG log
        kafka_engine.processor().run(until_idle=True)
        customer = api.get("/v1/customers/kim").json()
        assert customer["order_count"] == 1 and customer["lifetime_spend"] == 50
        feed = api.get("/v1/triggers").json()["items"]
        assert [(t["customer_id"], t["rule_id"]) for t in feed] == [
            ("kim", "first-purchase-thank-you")
        ]
        assert kafka_engine.dead_letters.count() == 1
        # per-customer reads come from the topic too: the timeline and --as-of
        api.post([_purchase("k3", "kim", "2026-03-05T10:00:00Z", amount=20)])
        api.post([_purchase("k1", "kim")])  # a repeat on the topic, applied once
        kafka_engine.processor().run(until_idle=True)
        items = api.get("/v1/customers/kim/timeline").json()["items"]
        assert [i.get("event_id") or i["trigger"]["rule_id"] for i in items] == [
            "k1",
            "first-purchase-thank-you",
            "k3",
        ]
        then = api.get("/v1/customers/kim", params={"as_of": "2026-03-02T00:00:00Z"}).json()
        assert then["order_count"] == 1 and then["lifetime_spend"] == 50
        now = api.get("/v1/customers/kim").json()
        assert now["order_count"] == 2 and now["lifetime_spend"] == 70
