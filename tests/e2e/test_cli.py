"""The ``engage`` command as a user runs it: exit codes, output contracts, errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.helpers import event, lines

CONTRACT_KEYS = {
    "customer_id",
    "first_seen",
    "last_seen",
    "event_count",
    "counts_by_type",
    "counts_by_channel",
    "lifetime_spend",
    "order_count",
    "average_order_value",
    "last_purchase_at",
    "email_sent",
    "email_opened",
    "email_clicked",
    "open_rate",
    "click_rate",
    "subscribed",
    "nps_last",
    "nps_average",
    "csat_last",
    "csat_average",
    "survey_count",
    "support_cases",
    "open_support_cases",
    "engagement_score",
    "lifecycle_stage",
    "recent_touchpoints",
}


def engage(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engage.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _history(tmp_path: Path, bad: bool) -> Path:
    rows = lines(
        event("e1", "ann", "purchase", "2026-03-01T10:00:00Z", order_id="o1", amount=50),
        event("e2", "ann", "email_sent", "2026-03-02T10:00:00Z", campaign_id="c1"),
        event("e3", "ann", "email_opened", "2026-03-02T11:00:00Z", campaign_id="c1"),
    )
    if bad:
        rows.insert(1, '{"event_id": "x", "customer_id": "ann", "type": "nope"}')
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_publish_run_profile_json(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = _history(tmp_path, bad=False)
    published = engage(cli_env, "publish", str(path))
    assert published.returncode == 0, published.stderr
    assert "accepted 3, duplicate 0, rejected 0" in published.stdout
    again = engage(cli_env, "publish", str(path))
    assert again.returncode == 0 and "accepted 0, duplicate 3, rejected 0" in again.stdout
    ran = engage(cli_env, "run", "--until-idle")
    assert ran.returncode == 0, ran.stderr
    shown = engage(cli_env, "profile", "ann", "--json")
    assert shown.returncode == 0, shown.stderr
    profile = orjson.loads(shown.stdout)
    assert profile.keys() >= CONTRACT_KEYS
    assert profile["order_count"] == 1 and profile["open_rate"] == 1.0
    assert profile["last_purchase_at"] == "2026-03-01T10:00:00Z"
    table = engage(cli_env, "profile", "ann")
    assert table.returncode == 0 and "lifetime_spend" in table.stdout
    status = engage(cli_env, "status")
    assert status.returncode == 0 and "3 events" in status.stdout and "lag 0" in status.stdout


def test_publish_with_a_bad_line_exits_1_and_names_line_field_reason(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = engage(cli_env, "publish", str(_history(tmp_path, bad=True)))
    assert result.returncode == 1
    assert "accepted 3, duplicate 0, rejected 1" in result.stdout
    assert "events.jsonl:line 2: type: unknown type 'nope'" in result.stderr
    listed = engage(cli_env, "dlq", "--json")
    letters = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(d["line"], d["field"]) for d in letters] == [(2, "type")]
    assert letters[0]["raw"] == '{"event_id": "x", "customer_id": "ann", "type": "nope"}'


def test_publish_from_stdin(cli_env: dict[str, str]) -> None:
    body = "\n".join(lines(event("s1", "sue", "web_visit", "2026-03-01T10:00:00Z", url="u")))
    result = engage(cli_env, "publish", "-", stdin=body)
    assert result.returncode == 0 and "accepted 1" in result.stdout


def test_errors_are_one_line_without_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    unknown = engage(cli_env, "profile", "nobody")
    assert unknown.returncode != 0
    database = cli_env["ENGAGE_DATABASE_URL"]
    assert unknown.stderr.strip() == (
        f"engage: error: unknown customer 'nobody' in the database at {database}"
    )
    missing = engage(cli_env, "publish", str(tmp_path / "missing.jsonl"))
    assert missing.returncode != 0 and "no such file" in missing.stderr
    bad_url = engage({**cli_env, "ENGAGE_DATABASE_URL": "mysql://x/y"}, "status")
    assert bad_url.returncode != 0 and "postgresql://" in bad_url.stderr
    no_db = engage(
        {**cli_env, "ENGAGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "status"
    )
    assert no_db.returncode != 0 and "cannot connect to PostgreSQL" in no_db.stderr
    bad_now = engage(cli_env, "run", "--until-idle", "--now", "yesterday")
    assert bad_now.returncode != 0 and "--now" in bad_now.stderr
    for result in (unknown, missing, bad_url, no_db, bad_now):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_demo_runs_small(cli_env: dict[str, str]) -> None:
    result = engage(cli_env, "demo", "--customers", "50", "--days", "30")
    assert result.returncode == 0, result.stderr
    assert "published: accepted" in result.stdout
    assert "profiles" in result.stdout
    status = engage(cli_env, "status")
    assert "lag 0" in status.stdout


def test_demo_takes_its_size_from_the_environment(
    cli_env: dict[str, str], fresh_database: Callable[[], str]
) -> None:
    """``ENGAGE_DEMO_CUSTOMERS`` (what tests/e2e/test_readme.py sets to walk the
    README on a smaller demo) sizes the demo; ``--customers`` still wins."""
    env = {**cli_env, "ENGAGE_DEMO_CUSTOMERS": "20"}
    result = engage(env, "demo", "--days", "30")
    assert result.returncode == 0, result.stderr
    assert "into 20 profiles" in result.stdout
    env["ENGAGE_DATABASE_URL"] = fresh_database()
    again = engage(env, "demo", "--customers", "30", "--days", "30")
    assert again.returncode == 0, again.stderr
    assert "into 30 profiles" in again.stdout


def test_triggers_table_is_paged_and_an_unknown_rule_gets_a_hint(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    rows = lines(
        *[
            event(
                f"t{n}",
                f"cust-{n:02d}",
                "purchase",
                f"2026-03-01T10:{n:02d}:00Z",
                order_id=f"o{n}",
                amount=5,
            )
            for n in range(55)
        ]
    )
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(rows) + "\n")
    assert engage(cli_env, "publish", str(path)).returncode == 0
    # --now stands in for the wall time: with today's clock every buyer's
    # inactivity timer would fire too, and this test counts thank-yous
    at = ("--now", "2026-03-02T00:00:00Z")
    ran = engage(cli_env, "run", "--until-idle", "--workers", "1", *at)
    assert ran.returncode == 0 and "processed 55 events" in ran.stdout, ran.stderr
    table = engage(cli_env, "triggers")
    assert table.returncode == 0, table.stderr
    assert "latest 50 triggers" in table.stdout and "--limit N" in table.stderr
    assert "cust-54" in table.stdout and "cust-04 " not in table.stdout  # the latest ones
    five = engage(cli_env, "triggers", "--limit", "5")
    assert "latest 5 triggers" in five.stdout
    from_since = engage(cli_env, "triggers", "--since", "2026-03-01T10:50:00Z")
    assert "5 triggers" in from_since.stdout and "more:" not in from_since.stderr
    every = engage(cli_env, "triggers", "--json")
    assert len(every.stdout.splitlines()) == 55  # --json prints every one
    unknown = engage(cli_env, "triggers", "--rule", "first-purchase-thanks")
    assert unknown.returncode == 0 and "0 triggers" in unknown.stdout
    assert "no trigger was ever fired by a rule 'first-purchase-thanks'" in unknown.stderr
    assert "first-purchase-thank-you" in unknown.stderr  # the ids that exist
    one = engage(
        cli_env,
        "publish",
        "-",
        stdin=lines(event("t99", "solo", "web_visit", "2026-03-02T10:00:00Z", url="/"))[0],
    )
    assert one.returncode == 0
    single = engage(cli_env, "run", "--until-idle", "--workers", "1", *at)
    assert "processed 1 event in" in single.stdout and "0 triggers fired" in single.stdout
    status = engage(cli_env, "status")
    assert "56 events and" in status.stdout and "size" in status.stdout
    assert cli_env["ENGAGE_DATABASE_URL"] in status.stdout
