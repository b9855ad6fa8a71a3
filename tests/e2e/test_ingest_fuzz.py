"""Fuzzing ingest, over HTTP and through ``engage publish`` (issue 11).

Hypothesis builds batches of hostile events: values nested up to 200 deep,
any unicode (control characters, bidi overrides, U+2028), huge strings,
out-of-range and malformed timestamps, wrong types, unaddressable ids,
missing fields, plus raw lines that are not JSON or not UTF-8. Whatever is
sent, the engine must answer as its contract says:

* no 5xx and no "internal error": every answer is a per-event verdict or a
  4xx naming the problem;
* accepted + duplicate + rejected = sent;
* the dead-letter store holds exactly the rejected: one new row per rejected
  event, with its line (HTTP: 1-based position) and event_id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from events.limits import dumps_any
from events.model import EVENT_TYPES
from tests.http_support import Api, api_client

EXAMPLES = int(os.environ.get("ENGAGE_FUZZ_EXAMPLES", "40"))

_unicode = st.characters(codec="utf-8")  # every code point UTF-8 can carry: C0, C1, bidi...
nasty_text = st.one_of(
    st.text(_unicode, max_size=40),
    st.sampled_from(["", ".", "..", "a/b", "\x1b[2J", "\x00", "\u202e", "\u2028", " ", "%00"]),
    st.integers(129, 5_000).map(lambda n: "x" * n),
    st.integers(0, 40_000).map(lambda n: "é" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> object:
    """A value nested 1 to 200 levels: around the limit (32) and far past it."""
    depth = draw(st.integers(1, 200))
    value: object = draw(scalars)
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {draw(nasty_text): value}
    return value


timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2026-03-01T10:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-03-01T10:00:00",
            "2026-13-01T00:00:00Z",
            "tomorrow",
        ]
    ),
    scalars,
)
free_form = st.one_of(json_values, deep())


@st.composite
def hostile_event(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 20)) == 0:
        return draw(json_values)  # not even an object
    event_type = draw(st.sampled_from(list(EVENT_TYPES)) | nasty_text)
    required, optional, _ = EVENT_TYPES.get(event_type, ((), (), ""))
    props: dict[str, Any] = {}
    for name in (*required, *optional):
        if draw(st.integers(0, 4)):
            props[name] = draw(
                st.one_of(
                    st.sampled_from(["o-1", "nps", "csat", "USD"]),
                    st.integers(0, 10),
                    st.floats(0, 1e13, allow_nan=False),
                    free_form,
                    scalars,
                )
            )
    props.update(draw(st.dictionaries(nasty_text, free_form, max_size=3)))
    obj: dict[str, Any] = {
        "event_id": draw(st.uuids().map(str) | nasty_text | scalars),
        "customer_id": draw(st.sampled_from(["ann", "bob"]) | nasty_text | scalars),
        "type": event_type,
        "occurred_at": draw(timestamps),
        "properties": draw(st.just(props) | free_form),
    }
    for name in draw(st.sets(st.sampled_from(sorted(obj)), max_size=2)):
        del obj[name]
    if draw(st.booleans()):
        obj["channel"] = draw(st.sampled_from(["web", "email"]) | nasty_text)
    if draw(st.booleans()):
        obj["source"] = draw(scalars)
    return obj


def _new_dead_letters(dsn: str, after: int) -> list[tuple[int, int | None, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, line_no, event_id FROM dead_letters WHERE id > %s ORDER BY id", (after,)
        ).fetchall()
    return [(int(i), line, eid) for i, line, eid in rows]


def _last_id(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM dead_letters").fetchone()
    assert row is not None
    return int(row[0])


def _as_stored(event_id: object) -> str | None:
    return event_id.replace("\x00", "\\u0000") if isinstance(event_id, str) else None


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with api_client(settings, ServeConfig(process=False, deliver=False, pool_size=2)) as client:
        yield client


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip


def test_http_ingest_survives_hostile_batches(api: Api, settings: Settings) -> None:
    dsn = str(settings.database_url)

    @FUZZ
    @given(batch=st.lists(hostile_event(), min_size=1, max_size=25), single=st.booleans())
    def check(batch: list[object], single: bool) -> None:
        body: object = batch[0] if single else batch
        before = _last_id(dsn)
        r = api.post(dumps_any(body).encode())
        assert r.status_code < 500, r.text
        out = r.json()
        new = _new_dead_letters(dsn, before)
        if r.status_code == 413:  # too large to keep: refused whole, nothing stored
            assert "error" in out and new == []
            return
        if r.status_code not in (200, 422) or "results" not in out:
            # the body as a whole was refused: one dead letter for it, nothing stored
            assert "error" in out and len(new) == 1, (r.status_code, out)
            return
        sent = len(body) if isinstance(body, list) else 1
        assert out["accepted"] + out["duplicate"] + out["rejected"] == sent
        assert len(out["results"]) == sent
        rejected = [x for x in out["results"] if x["status"] == "rejected"]
        assert len(rejected) == out["rejected"]
        assert all(x["field"] and x["reason"] for x in rejected)
        assert [(line, eid) for _, line, eid in new] == [
            (x["index"] + 1, _as_stored(x["event_id"])) for x in rejected
        ]
        assert r.status_code == (422 if isinstance(body, dict) and rejected else 200)

    check()


def test_http_ingest_refuses_unparseable_bodies_with_a_4xx(api: Api, settings: Settings) -> None:
    dsn = str(settings.database_url)

    @FUZZ
    @given(
        body=st.binary(max_size=300)
        | st.integers(1_025, 3_000).map(lambda n: b"[" * n + b"]" * n)
        | st.sampled_from([b"1e400", b'{"a": 1e999}', b"\xff", b'"\\ud800"', b"", b"null"])
    )
    def check(body: bytes) -> None:
        before = _last_id(dsn)
        r = api.post(body)
        assert r.status_code < 500, r.text
        out = r.json()
        new = _new_dead_letters(dsn, before)
        if "results" in out:  # it parsed after all: the accounting holds
            sent = len(out["results"])
            assert out["accepted"] + out["duplicate"] + out["rejected"] == sent
            assert len(new) == out["rejected"]
        else:
            assert 400 <= r.status_code < 500 and out["error"]
            assert len(new) == 1

    check()


_REPORT = re.compile(r"accepted (\d+), duplicate (\d+), rejected (\d+)")


@st.composite
def hostile_lines(draw: st.DrawFn) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 30))):
        if draw(st.integers(0, 5)) == 0:
            raw = draw(st.binary(min_size=1, max_size=80).filter(lambda b: b"\n" not in b))
        else:
            raw = dumps_any(draw(hostile_event())).encode()
        try:
            if not raw.decode("utf-8").strip():
                continue  # a blank line is skipped, not sent
        except UnicodeDecodeError:
            pass
        lines.append(raw)
    return lines


def test_cli_publish_survives_hostile_files(
    cli_env: dict[str, str], database: str, tmp_path: Path
) -> None:
    counter = iter(range(10**6))

    @settings(
        max_examples=max(4, EXAMPLES // 5),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(lines=hostile_lines())
    def check(lines: list[bytes]) -> None:
        path = tmp_path / f"fuzz-{next(counter)}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        before = _last_id(database)
        done = subprocess.run(
            [sys.executable, "-m", "engage.cli", "publish", str(path)],
            env=cli_env,
            capture_output=True,
            timeout=120,
        )
        stdout, stderr = done.stdout.decode(), done.stderr.decode(errors="replace")
        assert done.returncode in (0, 1), stderr
        assert "internal error" not in stderr and "Traceback" not in stderr
        found = _REPORT.search(stdout)
        assert found is not None, stdout
        accepted, duplicate, rejected = (int(x) for x in found.groups())
        assert accepted + duplicate + rejected == len(lines)
        assert done.returncode == (1 if rejected else 0)
        new = _new_dead_letters(database, before)
        assert len(new) == rejected
        numbers = [line_no for _, line_no, _ in new]
        assert len(set(numbers)) == rejected  # one row per rejected line, never two
        for _, line_no, event_id in new:
            assert line_no is not None and 1 <= line_no <= len(lines)
            try:
                obj = orjson.loads(lines[line_no - 1])
            except orjson.JSONDecodeError:
                assert event_id is None
                continue
            if isinstance(obj, dict):
                assert event_id == _as_stored(obj.get("event_id"))

    check()
