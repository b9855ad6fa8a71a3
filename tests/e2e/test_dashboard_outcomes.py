"""The dashboard's "Did it work?" panel in a real headless browser: per rule
and arm, triggers, conversions, rate, revenue and time to convert, delivery
feedback, and the uplift with its interval; the held-out trigger is in the
panel but not in "Who to contact now"."""

from __future__ import annotations

from pathlib import Path

import orjson
from playwright.sync_api import expect

from engage.config import Settings
from engage.database import connect
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.http_support import assert_not_blank, chromium_page, live_server, make_keys
from tests.integration.test_closed_loop import CTL, LATE, TRT, _history


def test_the_outcomes_panel(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    _history(engine)
    with connect(engine.dsn) as conn:
        (trigger_id,) = conn.execute(
            "SELECT trigger_id FROM trigger_outbox"
            " WHERE rule_id = 'win-back-90d' AND customer_id = %s",
            (TRT,),
        ).fetchone() or ("",)
    ingest, read = make_keys(settings)
    config = ServeConfig(process=False, deliver=False, pool_size=2)
    with live_server(settings, config) as url, chromium_page() as page:
        page.request.post(
            f"{url}/v1/triggers/{trigger_id}/outcome",
            data=orjson.dumps({"status": "opened"}),
            headers={"Authorization": f"Bearer {ingest}", "Content-Type": "application/json"},
        )
        page.goto(url + "/")
        page.fill("#key", read)
        page.click("#login-form button")
        page.wait_for_selector("#app:not([hidden])")
        expect(page.locator("#outcomes")).to_contain_text("win-back-90d")
        rows = page.locator("#outcomes tbody tr")
        texts = [rows.nth(i).inner_text() for i in range(rows.count())]
        cells = [[c.strip() for c in t.split("\t")] for t in texts]
        by = {(i // 2, c[1]): c for i, c in enumerate(cells)}
        rules = [cells[i][0] for i in range(0, len(cells), 2)]
        assert rules[:3] == ["first-purchase-thank-you", "win-back-90d", "detractor-follow-up"]
        treatment, control = by[(1, "treatment")], by[(1, "control")]
        # triggers, conversions, rate, revenue, median time, delivered, opened, clicked
        assert treatment[2:10] == ["2", "1", "50.0%", "$30.00", "5.0 days", "0", "1", "0"]
        assert control[2:7] == ["1", "1", "100.0%", "$70.00", "5.0 days"]
        assert treatment[10].startswith("-50.0% (95% CI -")
        assert "no control arm yet" in by[(0, "treatment")][10]
        assert by[(0, "treatment")][2:4] == ["3", "3"]
        # the held-out customer is measured, never someone to contact
        page.wait_for_selector("#contact-list a")
        listed = [
            tuple(line.split("\t")[1:3])
            for line in page.inner_text("#contact-list tbody").splitlines()
        ]
        assert (TRT, "win-back-90d") in listed and (LATE, "win-back-90d") in listed
        assert (CTL, "win-back-90d") not in listed
        assert (CTL, "first-purchase-thank-you") in listed
        shot = page.locator("#outcomes-card").screenshot(path=str(tmp_path / "outcomes.png"))
        assert_not_blank(shot)
