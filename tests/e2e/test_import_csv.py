"""``engage import csv``: the shipped mappings on CSV exports the test writes."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from events.csv_mapping import SHIPPED, MappingError, load_mapping
from tests.e2e.test_cli import engage


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_every_shipped_mapping_loads() -> None:
    for name in SHIPPED:
        assert load_mapping(name).events


def test_a_bad_mapping_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n  - type: purchase\n    event_id: x\n    occurred_at: {colum: A}\n")
    with pytest.raises(
        MappingError,
        match=r"bad.yaml: events\.0\.occurred_at\.colum: Extra inputs are not permitted$",
    ):
        load_mapping(str(bad))
    zone = tmp_path / "zone.yaml"
    zone.write_text("timezone: Mars/Olympus\nevents: []\n")
    with pytest.raises(MappingError, match=r"timezone: .*unknown time zone 'Mars/Olympus'"):
        load_mapping(str(zone))
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(str(tmp_path / "missing.yaml"))


def test_orders_export(cli_env: dict[str, str], tmp_path: Path) -> None:
    orders = write_csv(
        tmp_path / "orders.csv",
        ["Order ID", "Customer ID", "Created At", "Total", "Currency", "Channel"],
        [
            ["1001", "ada", "2026-03-01 10:00:00", "120.50", "USD", "Online"],
            ["1002", "ada", "2026-03-05 09:30:00", "abc", "USD", "Store"],
            ["1003", "bob", "2026-03-06T12:00:00+02:00", "80", "eur", "POS"],
            ["1004", "", "2026-03-07 08:00:00", "10", "USD", ""],
        ],
    )
    first = engage(cli_env, "import", "csv", str(orders), "--map", "orders")
    assert first.returncode == 1, first.stderr
    assert "accepted 2, duplicate 0, rejected 2" in first.stdout
    assert "orders.csv:line 3: properties.amount (column 'Total'): 'abc' is not a number" in (
        first.stderr
    )
    assert "orders.csv:line 5: customer_id" in first.stderr
    again = engage(cli_env, "import", "csv", str(orders), "--map", "orders")
    assert "accepted 0, duplicate 2, rejected 2" in again.stdout
    dlq = engage(cli_env, "dlq", "--json")
    letters = [orjson.loads(line) for line in dlq.stdout.splitlines()]
    assert {(d["line"], d["raw"]) for d in letters} >= {
        (3, "1002,ada,2026-03-05 09:30:00,abc,USD,Store")
    }
    assert engage(cli_env, "run", "--until-idle").returncode == 0
    ada = orjson.loads(engage(cli_env, "profile", "ada", "--json").stdout)
    assert ada["lifetime_spend"] == 120.5 and ada["counts_by_channel"] == {"web": 1}
    bob = orjson.loads(engage(cli_env, "profile", "bob", "--json").stdout)
    assert bob["first_seen"] == "2026-03-06T10:00:00Z" and bob["counts_by_channel"] == {"store": 1}


def test_nps_survey_export(cli_env: dict[str, str], tmp_path: Path) -> None:
    responses = write_csv(
        tmp_path / "nps.csv",
        ["Response ID", "Customer ID", "Recorded Date", "Score", "Comment"],
        [
            ["r1", "ada", "03/01/2026 09:00", "9", "Great, thanks"],
            ["r2", "bob", "03/02/2026 18:30", "3", "Slow delivery,\nwrong size"],
            ["r3", "cy", "03/02/2026 18:31", "11", ""],
        ],
    )
    done = engage(cli_env, "import", "csv", str(responses), "--map", "nps-survey")
    assert "accepted 2, duplicate 0, rejected 1" in done.stdout, done.stderr
    # line 5: r2's quoted comment spans lines 3-4
    assert "nps.csv:line 5: properties.score (column 'Score'): nps score must be 0 to 10" in (
        done.stderr
    )
    assert engage(cli_env, "run", "--until-idle").returncode == 0
    bob = orjson.loads(engage(cli_env, "profile", "bob", "--json").stdout)
    assert bob["nps_last"] == 3
    assert bob["first_seen"] == "2026-03-02T23:30:00Z"  # America/New_York, EST


def test_support_cases_export(cli_env: dict[str, str], tmp_path: Path) -> None:
    cases = write_csv(
        tmp_path / "cases.csv",
        ["Case Number", "Contact ID", "Created Date", "Closed Date", "Resolution"],
        [
            ["5001", "ada", "2026-03-01T08:00:00Z", "2026-03-02T08:00:00Z", "Refunded"],
            ["5002", "ada", "2026-03-03T08:00:00Z", "", ""],
        ],
    )
    done = engage(cli_env, "import", "csv", str(cases), "--map", "support-cases")
    assert done.returncode == 0 and "accepted 3, duplicate 0, rejected 0" in done.stdout
    assert engage(cli_env, "run", "--until-idle").returncode == 0
    ada = orjson.loads(engage(cli_env, "profile", "ada", "--json").stdout)
    assert ada["support_cases"] == 2 and ada["open_support_cases"] == 1
    triggers = engage(cli_env, "triggers", "--customer", "ada", "--json").stdout
    assert "feedback-after-support" in triggers


def test_contacts_export(cli_env: dict[str, str], tmp_path: Path) -> None:
    contacts = write_csv(
        tmp_path / "contacts.csv",
        ["Contact ID", "Email", "First Name", "Last Name", "Modified Date"],
        [["ada", "ada@example.com", "Ada", "Lovelace", "2026-03-01T09:00:00Z"]],
    )
    done = engage(cli_env, "import", "csv", str(contacts), "--map", "contacts")
    assert done.returncode == 0 and "accepted 1, duplicate 0, rejected 0" in done.stdout
    assert engage(cli_env, "run", "--until-idle").returncode == 0
    ada = orjson.loads(engage(cli_env, "profile", "ada", "--json").stdout)
    assert ada["counts_by_type"] == {"identify": 1}


def test_a_header_without_the_mapped_columns_stores_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    wrong = write_csv(tmp_path / "x.csv", ["id", "who"], [["1", "ada"]])
    done = engage(cli_env, "import", "csv", str(wrong), "--map", "orders")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "the CSV header does not have" in done.stderr and "'Order ID'" in done.stderr
