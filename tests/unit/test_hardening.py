"""Regression tests for issue 11 (hostile input), the pure parts: each case
below failed, raised or was accepted on main before the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import HTTPException

from consumers.webhook_targets import TargetRefused, check_target, parse_target
from engage.cli.safe_text import printable
from engage.config import Settings
from engage.errors import ConfigError
from engage.http.paging import decode_cursor, encode_cursor, timeline_page
from engage.http.security import request_problem
from events.dead_letters import RAW_KEEP, capped
from events.ingest import IngestError, Rejection, parse_line, parse_object, validate
from events.limits import MAX_DEPTH, TimeWindow, dumps_any
from events.model import DAY, Touchpoint
from events.redact import mask_url, strip_credentials
from events.timefmt import parse_iso
from projections.kpis import report
from rules import RuleError, load_rules_text
from rules.expressions import ExpressionError, compile_expression

NOW = parse_iso("2026-06-01T00:00:00Z")
WINDOW = TimeWindow.around(NOW)


def visit(**over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e1",
        "customer_id": "c1",
        "type": "web_visit",
        "occurred_at": "2026-05-01T00:00:00Z",
        "properties": {"url": "/"},
    }
    event.update(over)
    return event


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --- defect 1: occurred_at bounds ------------------------------------------------------


@pytest.mark.parametrize(
    "when", ["9999-12-31T00:00:00Z", "2026-06-02T00:00:01Z", "3000-01-01T00:00:00+05:00"]
)
def test_occurred_at_beyond_now_plus_max_future_is_rejected(when: str) -> None:
    result = parse_object(visit(occurred_at=when), 1, window=WINDOW)
    assert isinstance(result, Rejection)
    assert result.field == "occurred_at" and "in the future" in result.reason
    assert "ENGAGE_MAX_FUTURE" in result.reason


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_occurred_at_before_1970_is_rejected_even_without_a_window(when: str) -> None:
    for window in (None, WINDOW):
        result = parse_object(visit(occurred_at=when), 1, window=window)
        assert isinstance(result, Rejection)
        assert result.field == "occurred_at" and "before 1970-01-01" in result.reason


def test_occurred_at_up_to_the_bound_is_accepted() -> None:
    assert validate(visit(occurred_at="2026-06-02T00:00:00Z"), WINDOW).occurred_at == NOW + DAY
    late = TimeWindow.around(NOW, 30 * DAY)
    assert isinstance(validate(visit(occurred_at="2026-06-30T00:00:00Z"), late), Touchpoint)


def test_engage_max_future_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).max_future == DAY
    assert Settings.from_env({"ENGAGE_MAX_FUTURE": "6h"}).max_future == DAY // 4
    with pytest.raises(ConfigError, match="ENGAGE_MAX_FUTURE"):
        Settings.from_env({"ENGAGE_MAX_FUTURE": "soon"})


def test_kpi_report_is_bounded_by_the_data_present() -> None:
    """Facts in year 1 and year 9999 (stored before ingest had bounds) and a
    clock at 9999: main raised OverflowError or built millions of periods."""
    year1 = -719_162
    y9999 = 2_932_896 - 1  # 9999-12-31
    today = NOW // DAY
    flows = [(d, "web", "prospect", [1] + [0] * 14) for d in (year1, today, y9999)]
    for by in ("day", "week", "month"):
        out = report(by, y9999 * DAY, flows, [], [], [])
        assert 0 < len(out["periods"]) <= 5_000 and out["sparse"]
        assert {p["period"][:4] for p in out["periods"]} >= {"2026", "9999"}
        assert out["total"]["business"]["events"] == 3
    normal = report("day", (today + 40) * DAY, flows[1:2], [], [(today + 10, "x", 1)], [])
    assert len(normal["periods"]) == 11  # to the last stage change, not the far clock


# --- defects 2 and 3: nesting ----------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "props", "field"),
    [
        ("web_visit", {"url": "/", "junk": nested(300)}, "properties.junk"),
        ("identify", {"traits": {"a": nested(300)}}, "properties.traits"),
        ("purchase", {"order_id": "o", "amount": 1, "items": nested(1_000)}, "properties.items"),
        ("web_visit", {"url": "/", "x": {"y": nested(MAX_DEPTH)}}, "properties.x"),
        (
            "purchase",
            {"order_id": "o", "amount": 1, "items": list(range(1_001))},
            "properties.items",
        ),
    ],
)
def test_deep_or_huge_free_form_values_are_rejected_per_event(
    event_type: str, props: dict[str, Any], field: str
) -> None:
    result = parse_object(visit(type=event_type, properties=props), 4)
    assert isinstance(result, Rejection)
    assert result.field == field and result.line_no == 4
    assert dumps_any(props) in result.raw  # the raw text survives, however deep


def test_nesting_up_to_the_limit_is_kept() -> None:
    tp = validate(visit(properties={"url": "/", "x": nested(MAX_DEPTH - 1)}))
    assert json.loads(tp.extra["x"]) == nested(MAX_DEPTH - 1)


def test_json_lines_too_deep_for_the_parser_are_rejected_not_raised() -> None:
    line = '{"event_id":"d","properties":' + "[" * 5_000 + "]" * 5_000 + "}"
    assert isinstance(parse_line(line, 1), Rejection)


def test_dumps_any_writes_what_orjson_cannot() -> None:
    value = {"a": [nested(600, {"k": "v\u2028\x00"}), 1.5, None, True]}
    assert json.loads(dumps_any(value)) == value


# --- defect 6: unaddressable customer ids ----------------------------------------------


@pytest.mark.parametrize("customer_id", ["a/b", ".", "..", "x\x1b[2J", "tab\there", "\x7f"])
def test_customer_ids_no_url_or_terminal_can_carry_are_refused(customer_id: str) -> None:
    with pytest.raises(IngestError) as caught:
        validate(visit(customer_id=customer_id))
    assert caught.value.field == "customer_id"


def test_cursor_positions_beyond_int64_are_a_client_error() -> None:
    with pytest.raises(HTTPException) as caught:
        decode_cursor(encode_cursor({0: 2**63}), 8)
    assert caught.value.status_code == 400
    assert decode_cursor(encode_cursor({0: 2**63 - 1}), 2)[0] == 2**63 - 1
    with pytest.raises(HTTPException):
        timeline_page([], "9" * 40, 10)


@pytest.mark.parametrize(
    ("path", "query"),
    [(b"/v1/customers/a%00b", b""), (b"/v1/customers", b"q=%00"), (b"/v1/dlq", b"x=%ff%fe")],
)
def test_nul_and_bad_utf8_in_the_request_line_are_refused(path: bytes, query: bytes) -> None:
    assert request_problem({"raw_path": path, "query_string": query}) is not None
    assert request_problem({"raw_path": b"/v1/customers/caf%C3%A9", "query_string": b""}) is None


# --- defect 4: rule evaluation budget --------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "event.properties.items.all(a, a.all(b, b.all(c, c.all(d, d > 0))))",
        "[1, 2].all(a, [3].exists(b, [4].map(c, c).size() > 0))",
        " || ".join(["event.properties.items.all(a, a.all(b, b > 0))"] * 11),
        "event.properties.items.exists(i, event.properties.items.exists(j, i == j))",
        "event.properties.items.map(i, event.properties.items).exists(l, l.exists(x, x > 0))",
    ],
)
def test_over_costly_conditions_are_refused_at_load(condition: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(condition)
    rules = f"""
rules:
  - id: costly
    kind: custom
    audience: marketing
    on: event
    types: [purchase]
    when: '{condition}'
"""
    with pytest.raises(RuleError, match="costly"):
        load_rules_text(rules)


def test_comprehensions_over_parts_of_one_value_still_load() -> None:
    compile_expression("event.properties.items.exists(i, i.all(k, k != 'gift'))")
    compile_expression("event.properties.items.all(a, a.tags.all(b, b.parts.all(c, c > 0)))")
    compile_expression("'.all(.all(.all(' == 'x'")  # inside a string: no comprehension


# --- defect 5: DLQ raw text capped -----------------------------------------------------


def test_dead_letter_raw_text_is_capped_with_size_and_hash() -> None:
    junk = "x" * (5 * 1024 * 1024)
    kept, size, digest = capped(junk)
    assert len(kept) == RAW_KEEP and size == len(junk) and len(digest) == 64
    assert capped("short")[0] == "short"


# --- defect 7: terminal escapes --------------------------------------------------------


def test_control_characters_print_as_escapes() -> None:
    assert printable("id\x1b[2J\x07\u202e") == "id\\x1b[2J\\x07\\u202e"
    assert printable("plain ünïcode") == "plain ünïcode"


# --- defect 8: webhook targets ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:5432/",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://localhost:8080/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(TargetRefused, match="--allow-private"):
        check_target(url, allow_private=False, must_resolve=False)
    assert check_target(url, allow_private=True, must_resolve=False).address is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a\r\nX-Injected: 1",
        "http://example.com:99999/hook",
        "http://example.com:0/hook",
        "ftp://example.com/x",
        "http:///nohost",
        "http://exa mple.com/",
        "http://[::1/hook",
    ],
)
def test_malformed_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url)


def test_a_public_address_is_accepted() -> None:
    target = check_target("https://93.184.215.14:8443/h", allow_private=False, must_resolve=True)
    assert (target.address, target.port) == ("93.184.215.14", 8443)


# --- defect 9: secrets in errors -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cret@db:5432/engage",
        "host=db password=s3cret user=app",
        "host=db password='s3 cret",
        "postgresql://db/engage?password=s3cret&sslmode=require",
    ],
)
def test_passwords_are_masked(url: str) -> None:
    assert "s3" not in mask_url(url) and "***" in mask_url(url)


def test_a_malformed_database_url_is_reported_without_its_password() -> None:
    for url in ("host=x password=s3cret 'unterminated", "postgresql://u:s3cret@[::1/db"):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"ENGAGE_DATABASE_URL": url})
        assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_listings_drop_webhook_credentials() -> None:
    assert (
        strip_credentials("https://user:pw@hooks.example/x?a=1")
        == "https://***@hooks.example/x?a=1"
    )
    assert strip_credentials("https://hooks.example/x") == "https://hooks.example/x"
