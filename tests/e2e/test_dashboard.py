"""The dashboard in a real headless browser (Debian's chromium via Playwright):
sign-in with a read key, the tiles, the triggers chart, the DLQ, and a
customer search that opens the 360 and timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engage.config import Settings
from engage.http.app import ServeConfig
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
        assert "events on the log" in tiles and "3" in tiles
        page.wait_for_selector("#trigger-chart svg circle")
        assert page.locator("#trigger-chart svg polyline").count() == 1
        assert "first-purchase-thank-you (2)" in page.inner_text("#trigger-legend")
        dlq = page.inner_text("#dlq")
        assert "unknown type 'teleport'" in dlq and "broken" in dlq
        page.wait_for_selector("#kpis svg")
        pyramid = page.inner_text("#kpis")
        assert "Business" in pyramid and "net revenue: 127" in pyramid
        assert "Lifecycle stages" in pyramid and "Per customer" in pyramid
        assert "2026-02-23" in page.inner_text("#kpi-periods")  # the week of March 1st

        page.fill("#search", "ann")
        page.click("#search-form button")
        page.wait_for_selector("#customer:not([hidden])")
        assert "Customer ann-1" in page.inner_text("#customer-title")
        view = page.inner_text("#customer-360")
        assert "lifetime_spend" in view and "120" in view
        timeline = page.inner_text("#timeline")
        assert "purchase" in timeline and "email_opened" in timeline
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
