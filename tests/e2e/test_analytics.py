"""replay, backtest, kpis, export and --as-of, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from engage.synthetic import HistorySpec, generate_lines
from events.timefmt import parse_iso
from tests.e2e.test_cli import engage

SPEC = HistorySpec(customers=120, days=120, seed=21)


def _publish(env: dict[str, str], tmp_path: Path, lines: list[str], name: str) -> None:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    result = engage(env, "publish", str(path))
    assert result.returncode == 0, result.stderr


def _ok(env: dict[str, str], *args: str) -> str:
    result = engage(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fired(env: dict[str, str]) -> dict[str, int]:
    return {
        r["id"]: r["fired"]
        for r in map(orjson.loads, _ok(env, "rules", "--json").splitlines())
        if r["fired"]
    }


@pytest.fixture
def processed(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    _publish(cli_env, tmp_path, list(generate_lines(SPEC)), "history.jsonl")
    _ok(cli_env, "run", "--until-idle", "--workers", "2", "--batch-size", "300")
    return cli_env


def test_backtest_of_the_live_pack_reports_the_live_counts(processed: dict[str, str]) -> None:
    live = _fired(processed)
    assert len(live) >= 6, live
    report = orjson.loads(_ok(processed, "backtest", "rules/default.yaml", "--json"))
    got = {r["rule_id"]: r["triggers"] for r in report["rules"] if r["triggers"]}
    assert got == live
    for rule in report["rules"]:
        assert rule["overlap"]["same_trigger_ids_as_live"] == rule["triggers"]
        assert sum(rule["per_week"].values()) == rule["triggers"]
        for item in rule["sample"]:
            assert [e["event_id"] for e in item["caused_by_events"]] == item["caused_by"]
    assert _fired(processed) == live, "a backtest fires nothing"
    # the would-be outcomes are the live outcomes: same triggers, arms and conversions
    would = {r["rule_id"]: r for r in report["outcomes"]}
    lines = _ok(processed, "outcomes", "--json").split()
    real = {r["rule_id"]: r for r in map(orjson.loads, lines)}
    assert sum(a["conversions"] for r in real.values() for a in r["arms"]) > 0
    for rule_id, n in live.items():
        assert sum(a["triggers"] for a in would[rule_id]["arms"]) == n
        for w, r in zip(would[rule_id]["arms"], real[rule_id]["arms"], strict=True):
            assert (w["arm"], w["triggers"], w["conversions"]) == (
                r["arm"],
                r["triggers"],
                r["conversions"],
            ), rule_id
            assert w["revenue"] == pytest.approx(r["revenue"], abs=0.011)
            assert w["median_hours_to_convert"] == r["median_hours_to_convert"]


def test_backtest_of_a_new_rule_in_a_window(processed: dict[str, str], tmp_path: Path) -> None:
    rules = tmp_path / "big.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: big-basket\n    version: 1\n    kind: thank_you\n    audience: marketing\n"
        "    on: event\n    types: [purchase]\n    when: event.properties.amount >= 150\n"
        "    once_per: event\n"
    )
    start, end = "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"
    report = orjson.loads(
        _ok(processed, "backtest", str(rules), "--from", start, "--to", end, "--json")
    )
    (rule,) = report["rules"]
    assert rule["triggers"] > 0 and rule["customers"] <= rule["triggers"]
    assert all(start <= s["fired_at"] < end for s in rule["sample"])
    assert all(s["caused_by_events"][0]["type"] == "purchase" for s in rule["sample"])
    assert rule["overlap"]["same_trigger_ids_as_live"] == 0
    assert 0 < rule["overlap"]["customers_also_hit_live"] <= rule["customers"]
    weeks = list(rule["per_week"])
    assert weeks[0] >= "2026-01-26" and weeks[-1] < end
    # the event count is the history the rules saw: what ends before --to
    history = [orjson.loads(line) for line in generate_lines(SPEC)]
    before = sum(1 for e in history if parse_iso(e["occurred_at"]) < parse_iso(end))
    assert report["events"] == before < len(history)


def test_replay_kpis_and_export(processed: dict[str, str], tmp_path: Path) -> None:
    live = _fired(processed)
    profile = orjson.loads(_ok(processed, "profile", "c-000007", "--json"))
    kpis_before = orjson.loads(_ok(processed, "kpis", "--json", "--by", "month"))
    replayed = _ok(processed, "replay", "--workers", "2")
    assert "now live" in replayed and "none fired" in replayed
    assert _fired(processed) == live
    assert orjson.loads(_ok(processed, "profile", "c-000007", "--json")) == profile
    kpis = orjson.loads(_ok(processed, "kpis", "--json", "--by", "month"))
    assert kpis == kpis_before
    status = _ok(processed, "status")
    total = kpis["total"]["business"]["events"]
    assert f"{total:,} events" in status and "size" in status
    table = _ok(processed, "kpis")
    assert "customers in each lifecycle stage now" in table and "all time (not current" in table

    for kind, count_key in (("events", total), ("profiles", SPEC.customers)):
        for fmt in ("parquet", "csv"):
            path = tmp_path / f"{kind}.{fmt}"
            assert "wrote" in _ok(processed, "export", kind, "--format", fmt, "--out", str(path))
            reader = f"read_{fmt}"
            ((n,),) = duckdb.sql(f"SELECT count(*) FROM {reader}('{path}')").fetchall()
            assert n == count_key
    (row,) = duckdb.sql(
        f"SELECT lifetime_spend, order_count, lifecycle_stage, counts_by_type"
        f" FROM read_parquet('{tmp_path / 'profiles.parquet'}') WHERE customer_id = 'c-000007'"
    ).fetchall()
    assert row[:3] == (
        profile["lifetime_spend"],
        profile["order_count"],
        profile["lifecycle_stage"],
    )
    assert orjson.loads(row[3]) == profile["counts_by_type"]
    triggers = tmp_path / "triggers.parquet"
    _ok(processed, "export", "triggers", "--out", str(triggers))
    exported = {
        r[0] for r in duckdb.sql(f"SELECT trigger_id FROM read_parquet('{triggers}')").fetchall()
    }
    listed = {orjson.loads(x)["trigger_id"] for x in _ok(processed, "triggers", "--json").split()}
    # the stream (the feed and the export) holds the delivered arm; `engage rules`
    # counts every trigger fired, the held-out control arm too
    held = _ok(processed, "triggers", "--json", "--arm", "control").split()
    assert {orjson.loads(x)["arm"] for x in held} <= {"control"}
    assert exported == listed and len(listed) + len(held) == sum(live.values())


def test_profile_as_of_equals_the_profile_captured_live_then(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    cut = "2026-02-20T00:00:00Z"
    history = list(generate_lines(SPEC))
    early = [line for line in history if orjson.loads(line)["occurred_at"] <= cut]
    late = [line for line in history if orjson.loads(line)["occurred_at"] > cut]
    assert early and late
    _publish(cli_env, tmp_path, early, "early.jsonl")
    _ok(cli_env, "run", "--until-idle", "--now", cut)
    # three who act on both sides of the cut: the later history must change
    # their profiles, so the check below tells "as of" from "now" (each
    # customer costs three CLI runs)
    late_ids = {orjson.loads(line)["customer_id"] for line in late}
    customers = sorted({orjson.loads(line)["customer_id"] for line in early} & late_ids)[:3]
    assert len(customers) == 3
    captured = {c: orjson.loads(_ok(cli_env, "profile", c, "--json")) for c in customers}
    _publish(cli_env, tmp_path, late, "late.jsonl")
    _ok(cli_env, "run", "--until-idle")
    for c in customers:
        now = orjson.loads(_ok(cli_env, "profile", c, "--json"))
        then = orjson.loads(_ok(cli_env, "profile", c, "--json", "--as-of", cut))
        assert then == captured[c]
        assert now != then, "the later history changed the profile"
        assert parse_iso(then["as_of"]) == parse_iso(cut)


def test_errors_are_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("rules:\n  - id: x\n    kind: nope\n")
    for args, expected in (
        (("backtest", str(tmp_path / "missing.yaml")), "no such rule file"),
        (("backtest", str(bad_rules)), "bad.yaml"),
        (("kpis", "--by", "year"), "--by must be one of"),
        (("export", "people", "--out", str(tmp_path / "x.csv")), "export what?"),
        (("export", "events", "--format", "xls", "--out", str(tmp_path / "x")), "--format"),
        (("export", "events", "--out", str(tmp_path / "events.parquet")), "no events"),
    ):
        result = engage(cli_env, *args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
