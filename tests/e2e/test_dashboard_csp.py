"""The dashboard under its Content-Security-Policy (issue 11, defect 10): in a
real headless browser, nothing it does is refused by the policy (a refused
inline style once hid the chart legend's colours)."""

from __future__ import annotations

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.http_support import chromium_page, live_server, make_keys


def test_the_dashboard_runs_within_its_content_security_policy(
    settings: Settings, engine: Engine
) -> None:
    publish(engine, lines(event("e1", "ann", "purchase", "2026-03-01T10:00:00Z", order_id="o",
                                amount=5)))  # fmt: skip
    engine.processor().run(until_idle=True)
    _, read = make_keys(settings)
    config = ServeConfig(process=False, deliver=False, pool_size=2)
    with live_server(settings, config) as url, chromium_page() as page:
        refused: list[str] = []
        page.on(
            "console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None
        )
        response = page.goto(url + "/")
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.fill("#key", read)
        page.click("#login-form button")
        page.wait_for_selector("#trigger-chart svg circle")
        swatch = page.locator("#trigger-legend i").first
        assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
        page.fill("#search", "ann")
        page.click("#search-form button")
        page.wait_for_selector("#customer:not([hidden])")
        assert refused == []
