"""``engage model fit`` as a user runs it, on the CDNOW sample published as purchases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from events.model import DAY
from events.timefmt import parse_iso
from projections.adapters.model_fits import PostgresModelFits
from projections.model_fit import Customers, fit
from projections.predictions import summarise
from tests.e2e.test_cli import engage

CDNOW = Path(__file__).parent.parent / "data" / "cdnow" / "CDNOW_sample.txt"
AS_OF = "1997-09-30T23:59:59.999999Z"
"""The end of the papers' 39-week calibration period."""
HOLDOUT_END = "1998-06-30T23:59:59.999999Z"


def _purchases() -> list[tuple[str, int, float]]:
    rows = []
    for line in CDNOW.read_text().splitlines():
        _, customer, day, _, dollars = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        rows.append((f"cd{customer}", int(when.timestamp()) * 1_000_000, float(dollars)))
    return rows


@pytest.fixture
def published(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    lines = []
    for n, (customer, at, dollars) in enumerate(_purchases()):
        day = datetime.fromtimestamp(at / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "event_id": f"cdnow-{n}",
            "customer_id": customer,
            "type": "purchase",
            "occurred_at": day,
            "properties": {"order_id": f"o{n}", "amount": dollars},
        }
        lines.append(orjson.dumps(body).decode())
    path = tmp_path / "cdnow.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = engage(cli_env, "publish", str(path))
    assert done.returncode == 0, done.stderr
    assert "accepted 6,919" in done.stdout or "accepted 6919" in done.stdout
    return cli_env


def test_model_fit_on_cdnow_with_a_holdout(published: dict[str, str]) -> None:
    done = engage(
        published, "model", "fit", "--as-of", AS_OF, "--holdout-end", HOLDOUT_END, "--json"
    )
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert body["version"] == 1 and body["time_unit"] == "days"
    assert body["as_of"] == AS_OF
    assert body["customers"] == 2_357 and body["repeat_customers"] == 946
    params = body["params"]
    # the papers' estimates (T here runs to the end of 30 September, a day past
    # the papers' count, so BG/NBD lands near them; the value model exactly)
    assert params["alpha"] / 7 == pytest.approx(4.414, rel=0.01)
    for name, published_value in (("r", 0.243), ("a", 0.793), ("b", 2.426)):
        assert params[name] == pytest.approx(published_value, rel=0.04)
    assert (round(params["p"], 2), round(params["q"], 2), round(params["gamma"], 2)) == (
        6.25,
        3.74,
        15.44,
    )
    # ...and exactly the library's fit of the same purchases read from the file
    as_of = parse_iso(AS_OF)
    by_customer: dict[str, list[tuple[int, float]]] = {}
    for customer, at, dollars in _purchases():
        by_customer.setdefault(customer, []).append((at, dollars))
    stats = [summarise(p for p in by_customer[c] if p[0] <= as_of) for c in sorted(by_customer)]
    expected = fit(Customers.from_stats([s for s in stats if s is not None], as_of))
    assert params == expected.params.to_json()
    assert body["bgnbd_log_likelihood"] == pytest.approx(expected.bgnbd_log_likelihood)
    # the holdout: distinct purchase days after the calibration, counted here apart
    check = body["holdout"]
    assert check["days"] == pytest.approx(273.0)
    actual = sum(
        len({t // DAY for t, _ in purchases if t > as_of}) for purchases in by_customer.values()
    )
    assert check["total_actual"] == actual
    assert [row["frequency"] for row in check["by_frequency"]][-1] == "7+"
    assert sum(row["customers"] for row in check["by_frequency"]) == 2_357
    # stored as the current version
    with PostgresModelFits(published["ENGAGE_DATABASE_URL"]) as fits:
        stored = fits.latest()
    assert stored is not None and stored.version == 1 and stored.as_of == as_of
    assert stored.params.to_json() == params

    shown = engage(published, "model", "fit", "--as-of", AS_OF, "--holdout-end", HOLDOUT_END)
    assert shown.returncode == 0, shown.stderr
    assert "model version 2" in shown.stdout and "time unit: days" in shown.stdout
    assert "alpha" in shown.stdout and "gamma" in shown.stdout
    assert "7+" in shown.stdout and "mean absolute error" in shown.stdout


def test_model_fit_defaults_to_the_processor_clock(published: dict[str, str]) -> None:
    before = engage(published, "model", "fit")
    assert before.returncode != 0
    assert before.stderr.count("\n") == 1 and "engage run" in before.stderr
    # --now stands in for the wall time, which would otherwise move the clock to today
    ran = engage(published, "run", "--until-idle", "--now", "1998-06-30T00:00:00Z")
    assert ran.returncode == 0
    done = engage(published, "model", "fit", "--json")
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert body["as_of"] == "1998-06-30T00:00:00Z"  # the latest purchase folded
    assert "holdout" not in body


def test_model_fit_rejects_bad_instants(cli_env: dict[str, str]) -> None:
    for args, reason in (
        (["--as-of", "yesterday"], "--as-of"),
        (["--as-of", HOLDOUT_END, "--holdout-end", AS_OF], "later than --as-of"),
        (["--as-of", AS_OF], "BG/NBD needs at least 4 customers"),  # no purchases yet
    ):
        done = engage(cli_env, "model", "fit", *args)
        assert done.returncode != 0
        assert reason in done.stderr and "Traceback" not in done.stderr
        # one line (the progress bar leaves an empty line on a non-terminal stderr)
        assert done.stderr.strip().startswith("engage: error:")
        assert len(done.stderr.strip().splitlines()) == 1
