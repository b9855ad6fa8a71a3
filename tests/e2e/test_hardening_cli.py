"""Issue 11 through the ``engage`` command, as the attacker with a file ran it:
each test reproduces a defect found on main and checks the fixed behaviour."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.e2e.test_cli import engage
from tests.helpers import event, lines

GOOD = "2026-03-01T10:00:00Z"


def _write(tmp_path: Path, rows: list[str], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_far_future_event_is_rejected_and_never_moves_the_clock(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Defect 1: one event in year 9999 made every customer churned, fired every
    timer and left `engage kpis --by day` crashing with OverflowError."""
    rows = lines(
        event("p1", "ann", "purchase", GOOD, order_id="o1", amount=20),
        event("f1", "x", "web_visit", "9999-12-31T00:00:00Z", url="u"),
        event("f2", "x", "web_visit", "0001-01-01T00:00:00Z", url="u"),
        event("v1", "ann", "web_visit", "2026-03-02T10:00:00Z", url="u"),
    )
    published = engage(cli_env, "publish", str(_write(tmp_path, rows)))
    assert published.returncode == 1
    assert "accepted 2, duplicate 0, rejected 2" in published.stdout
    assert "line 2: occurred_at:" in published.stderr and "in the future" in published.stderr
    assert "line 3: occurred_at:" in published.stderr and "before 1970" in published.stderr
    dlq = [orjson.loads(x) for x in engage(cli_env, "dlq", "--json").stdout.splitlines()]
    assert [(d["line"], d["event_id"], d["field"]) for d in dlq] == [
        (2, "f1", "occurred_at"),
        (3, "f2", "occurred_at"),
    ]
    ran = engage(cli_env, "run", "--until-idle", "--now", "2026-03-03T00:00:00Z")
    assert ran.returncode == 0, ran.stderr
    profile = orjson.loads(engage(cli_env, "profile", "ann", "--json").stdout)
    assert profile["lifecycle_stage"] == "new"
    assert engage(cli_env, "triggers", "--json", "--rule", "inactive-30d").stdout == ""
    kpis = engage(cli_env, "kpis", "--by", "day", "--json")
    assert kpis.returncode == 0, kpis.stderr
    report = orjson.loads(kpis.stdout)
    assert report["as_of"].startswith("2026-03-")
    assert 1 <= len(report["periods"]) <= 100


def test_now_and_max_future_set_the_bound(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = _write(tmp_path, lines(event("a", "ann", "web_visit", "2026-03-05T00:00:00Z", url="u")))
    early = engage(cli_env, "publish", str(path), "--now", "2026-03-01T00:00:00Z")
    assert early.returncode == 1 and "in the future" in early.stderr
    wider = engage(
        {**cli_env, "ENGAGE_MAX_FUTURE": "7d"},
        "publish",
        str(path),
        "--now",
        "2026-03-01T00:00:00Z",
    )
    assert wider.returncode == 0 and "accepted 1" in wider.stdout
    bad = engage({**cli_env, "ENGAGE_MAX_FUTURE": "a while"}, "publish", str(path))
    assert bad.returncode == 2 and "ENGAGE_MAX_FUTURE" in bad.stderr


def test_a_deeply_nested_line_costs_only_itself(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Defects 2 and 3: a property nested ~255 deep made the CLI die with
    "internal error" and lose every valid line after it; items ~1,000 deep
    failed at Avro encoding. Neither left a DLQ row."""
    deep = "[" * 300 + "]" * 300
    items = "[" * 1_000 + "]" * 1_000
    rows = [
        orjson.dumps(event(f"e{i}", f"c{i % 50}", "web_visit", GOOD, url="u")).decode()
        for i in range(2_000)
    ]
    rows[1_599] = (
        '{"event_id":"bad1","customer_id":"c1","type":"web_visit","occurred_at":"'
        + GOOD
        + '","properties":{"url":"u","junk":'
        + deep
        + "}}"
    )
    rows[1_700] = (
        '{"event_id":"bad2","customer_id":"c1","type":"identify","occurred_at":"'
        + GOOD
        + '","properties":{"traits":{"t":'
        + deep
        + "}}}"
    )
    rows[1_800] = (
        '{"event_id":"bad3","customer_id":"c1","type":"purchase","occurred_at":"'
        + GOOD
        + '","properties":{"order_id":"o","amount":1,"items":'
        + items
        + "}}"
    )
    published = engage(cli_env, "publish", str(_write(tmp_path, rows)))
    assert published.returncode == 1, published.stderr
    assert "internal error" not in published.stderr
    assert "accepted 1997, duplicate 0, rejected 3" in published.stdout
    dlq = [orjson.loads(x) for x in engage(cli_env, "dlq", "--json").stdout.splitlines()]
    assert [(d["line"], d["field"]) for d in dlq] == [
        (1_600, "properties.junk"),
        (1_701, "properties.traits"),
        (1_801, "properties.items"),
    ]
    assert all("nested more than 32 levels" in d["reason"] for d in dlq)


def test_control_characters_in_data_are_escaped_in_human_output(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Defect 7: ids holding ESC sequences were printed raw by profile,
    timeline and triggers. Customer ids may no longer hold them; event ids,
    properties and rule details still can, and print escaped."""
    evil = "\x1b]0;owned\x07\x1b[2J"
    rows = lines(
        event("e" + evil, "ann", "purchase", GOOD, order_id="o" + evil, amount=5),
        event("cust", "ann" + evil, "web_visit", GOOD, url="u"),
    )
    published = engage(cli_env, "publish", str(_write(tmp_path, rows)))
    assert "rejected 1" in published.stdout and "\x1b" not in published.stderr
    assert engage(cli_env, "run", "--until-idle").returncode == 0
    for args in (("profile", "ann"), ("timeline", "ann"), ("triggers",), ("dlq",)):
        shown = engage(cli_env, *args)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout, args
    assert "\\x1b]0;owned\\x07" in engage(cli_env, "timeline", "ann").stdout
    as_json = engage(cli_env, "timeline", "ann", "--json").stdout.splitlines()
    assert orjson.loads(as_json[0])["event_id"] == "e" + evil  # JSON stays exact


def test_webhook_targets_are_checked_and_credentials_masked(cli_env: dict[str, str]) -> None:
    """Defect 8: link-local and private targets, credentials shown by `list`,
    CRLF, port 99999 and an unknown --kind were all accepted silently."""
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5432/",
        "http://0x7f000001/hook",
        "http://[::1]/hook",
    ):
        refused = engage(cli_env, "webhooks", "add", url)
        assert refused.returncode == 2, url
        assert "--allow-private" in refused.stderr and "Traceback" not in refused.stderr
    for url, why in (
        ("http://hooks.example/a\r\nX: 1", "white space or control"),
        ("http://hooks.example:99999/", "out of range"),
    ):
        refused = engage(cli_env, "webhooks", "add", url)
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
    unknown = engage(cli_env, "webhooks", "add", "http://127.0.0.1:9/h", "--allow-private",
                     "--kind", "no_such_kind")  # fmt: skip
    assert unknown.returncode == 2 and "--kind 'no_such_kind' matches no loaded rule" in (
        unknown.stderr
    )
    added = engage(cli_env, "webhooks", "add", "http://me:hunter2@127.0.0.1:9/h",
                   "--allow-private", "--kind", "thank_you")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "hunter2" not in added.stdout
    listed = engage(cli_env, "webhooks", "list")
    assert "hunter2" not in listed.stdout and "***@127.0.0.1:9" in listed.stdout


def test_a_malformed_database_url_never_echoes_its_password(cli_env: dict[str, str]) -> None:
    """Defect 9."""
    for url in ("host=db password=hunter2 'oops", "postgresql://app:hunter2@[::1/engage"):
        failed = engage({**cli_env, "ENGAGE_DATABASE_URL": url}, "status")
        assert failed.returncode == 2
        assert "hunter2" not in failed.stderr and "***" in failed.stderr, failed.stderr


def test_dlq_keeps_a_capped_raw_text_and_purges_by_age(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Defect 5: no size limit and no retention."""
    junk = "j" * (1024 * 1024)
    published = engage(cli_env, "publish", str(_write(tmp_path, [junk, junk, "{}"])))
    assert "rejected 3" in published.stdout
    dlq = [orjson.loads(x) for x in engage(cli_env, "dlq", "--json").stdout.splitlines()]
    assert [d["truncated"] for d in dlq] == [True, True, False]
    assert len(dlq[0]["raw"]) == 16 * 1024 and dlq[0]["raw_bytes"] == len(junk)
    older = engage(cli_env, "dlq", "--json", "--limit", "1", "--before", str(dlq[-1]["id"]))
    page = [orjson.loads(x) for x in older.stdout.splitlines()]
    assert [d["id"] for d in page] == [dlq[1]["id"]]
    kept = engage(cli_env, "dlq", "purge", "--before", "2000-01-01T00:00:00Z")
    assert kept.returncode == 0 and "deleted 0 dead letters" in kept.stdout
    purged = engage(cli_env, "dlq", "purge", "--before", "2999-01-01T00:00:00Z")
    assert "deleted 3 dead letters" in purged.stdout
    assert "the dead-letter store is empty" in engage(cli_env, "dlq").stdout
