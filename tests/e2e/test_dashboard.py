"""The dashboard in a real headless browser (Debian's chromium via Playwright):
sign-in with a read key, the tiles, the triggers chart, the DLQ, and a
customer search that opens the 360 and timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.http_support import assert_not_blank, chromium_page, live_server, make_keys


def test_dashboard_shows_the_engine_and_one_customer(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    publish(
        engine,
        [
            *lines(
                event("e1", "ann-1", "purchase", "2026-03-01T10:00:00Z", order_id="o1", amount=120),
                event("e0", "ann-1", "email_sent", "2026-03-02T09:00:00Z", campaign_id="spring"),
                event("e2", "ann-1", "email_opened", "2026-03-02T10:00:00Z", campaign_id="spring"),
                event("e3", "bob-2", "purchase", "2026-03-03T10:00:00Z", order_id="o2", amount=7),
            ),
            '{"event_id": "broken", "customer_id": "ann-1", "type": "teleport"}',
        ],
    )
    engine.processor().run(until_idle=True)
    ingest, read = make_keys(settings)
    config = ServeConfig(process=False, deliver=False, pool_size=2)
    with live_server(settings, config) as url, chromium_page() as page:
        page.goto(url + "/")
        page.wait_for_selector("#login-form")
        page.fill("#key", ingest)  # an ingest key cannot read
        page.click("#login-form button")
        page.wait_for_selector("#login-error:has-text('refused')")
        assert page.is_hidden("#app")

        page.fill("#key", read)
        page.click("#login-form button")
        page.wait_for_selector("#app:not([hidden])")
        tiles = page.inner_text("#tiles")
        assert "events on the log" in tiles and "4" in tiles
        page.wait_for_selector("#trigger-chart svg circle")
        assert page.locator("#trigger-chart svg polyline").count() == 1
        assert "first-purchase-thank-you (2)" in page.inner_text("#trigger-legend")
        # the dead-letter store is collapsed behind its count
        assert page.get_attribute("#dlq-details", "open") is None
        assert page.is_hidden("#dlq")
        assert "1 rejected input " in page.inner_text("#dlq-card summary") + " "
        page.click("#dlq-card summary")
        page.wait_for_selector("#dlq:visible")
        dlq = page.inner_text("#dlq")
        assert "unknown type 'teleport'" in dlq and "broken" in dlq
        page.click("#dlq-card summary")  # folded again for the screenshot
        page.wait_for_selector("#kpis svg")
        pyramid = page.inner_text("#kpis")
        assert "Business (all time)" in pyramid and "net revenue: $127.00" in pyramid
        assert "Lifecycle stages (customers in each now" in pyramid
        assert "Per customer (all time)" in pyramid and "open rate: " in pyramid
        periods = page.inner_text("#kpi-periods")
        assert "2026-02-23" in periods  # the week of March 1st
        assert "net revenue (USD)" in periods and "$120.00" in periods
        assert "100.0%" in periods  # the open rate of the week of March 2nd
        assert "triggers fired, all time" in tiles

        # who to contact now: newest first, filtered, each linked to its 360
        page.wait_for_selector("#contact-list a")
        contact = page.inner_text("#contact-list")
        assert contact.index("bob-2") < contact.index("ann-1")  # newest first
        assert "first-purchase-thank-you" in contact and "thank_you" in contact
        assert "amount=$120.00" in contact
        page.fill("#contact-from", "2026-03-03")
        page.fill("#contact-to", "2026-03-03")
        page.select_option("#contact-kind", "thank_you")
        page.click("#contact-form button[type=submit]")
        # expect() waits without evaluating a string in the page, which the CSP forbids
        expect(page.locator("#contact-list")).not_to_contain_text("ann-1")
        assert "bob-2" in page.inner_text("#contact-list")
        with page.expect_download() as download:
            page.click("#contact-csv")
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0].startswith("fired_at,customer_id,rule_id,kind,details")
        assert len(rows) == 2 and ",bob-2,first-purchase-thank-you,thank_you," in rows[1]
        page.click("#contact-list a")
        page.wait_for_selector("#customer:not([hidden])")
        assert "Customer bob-2" in page.inner_text("#customer-title")
        assert "$7.00" in page.inner_text("#customer-360")
        page.fill("#contact-from", "")
        page.fill("#contact-to", "")
        page.select_option("#contact-kind", "")
        page.click("#contact-form button[type=submit]")
        expect(page.locator("#contact-list")).to_contain_text("ann-1")

        page.fill("#search", "ann")
        page.click("#search-form button")
        page.wait_for_selector("#customer-title:has-text('Customer ann-1')")
        view = page.inner_text("#customer-360")
        assert "lifetime_spend" in view and "$120.00" in view and "100.0%" in view  # open rate
        timeline = page.inner_text("#timeline")
        assert "purchase" in timeline and "email_opened" in timeline
        assert "amount=$120.00" in timeline  # in the event's own currency (USD)
        assert "trigger first-purchase-thank-you" in timeline
        shot = page.screenshot(full_page=True, path=str(tmp_path / "dashboard.png"))
        assert_not_blank(shot)

        # the key lives in the browser session: a reload stays signed in
        page.reload()
        page.wait_for_selector("#app:not([hidden])")
        page.click("#logout")
        page.wait_for_selector("#login:not([hidden])")


def test_api_docs_render_with_no_internet(settings: Settings, tmp_path: Path) -> None:
    """/docs draws Swagger UI from the installed package: with every request
    outside the server refused, the operations still render."""
    config = ServeConfig(process=False, deliver=False, pool_size=1)
    with live_server(settings, config) as url, chromium_page() as page:
        outside: list[str] = []

        def only_local(route: Any) -> None:
            if route.request.url.startswith(url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.goto(url + "/docs")
        page.wait_for_selector(".opblock-summary-path")
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/events" in p for p in paths), paths
        assert outside == []
        assert_not_blank(page.screenshot(full_page=True, path=str(tmp_path / "docs.png")))
