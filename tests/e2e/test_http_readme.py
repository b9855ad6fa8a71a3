"""The README's HTTP walk-through with real processes: start `engage serve`,
create keys, subscribe a webhook, send an event with curl, see the customer in
the dashboard, and receive a signed webhook for the trigger it fired."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from consumers.webhook_signature import verify
from tests.e2e.test_cli import engage
from tests.http_support import assert_not_blank, chromium_page, receiver, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_readme_sequence(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "serve", "--port", str(port)],
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _healthy(url) or server.poll() is not None, 90, "engage serve")
        assert server.poll() is None, (tmp_path / "serve.log").read_text()

        created = engage(cli_env, "keys", "create", "shop")
        assert created.returncode == 0, created.stderr
        ingest_key = created.stdout.split()[-1]
        read = engage(cli_env, "keys", "create", "marketing", "--scope", "read")
        read_key = read.stdout.split()[-1]

        with receiver([500]) as hook:  # the first delivery fails, the retry succeeds
            # a receiver on loopback: the target policy wants --allow-private
            added = engage(
                cli_env, "webhooks", "add", hook.url, "--kind", "thank_you", "--allow-private"
            )
            assert added.returncode == 0, added.stderr
            secret = added.stdout.split()[-1]
            assert secret.startswith("whsec_")

            body = {
                "event_id": "ev-1",
                "customer_id": "c-42",
                "type": "purchase",
                "occurred_at": "2026-03-01T10:00:00Z",
                "properties": {"order_id": "o-9", "amount": 49.90, "currency": "EUR"},
            }
            curl = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-X",
                    "POST",
                    f"{url}/v1/events",
                    "-H",
                    f"Authorization: Bearer {ingest_key}",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    json.dumps(body),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert orjson.loads(curl.stdout)["results"] == [
                {"index": 0, "event_id": "ev-1", "status": "accepted"}
            ]

            wait_for(lambda: len(hook.ok()) == 1, 60, "the signed webhook")
            delivered = hook.ok()[0]
            assert verify(
                secret, delivered.headers["Engage-Signature"], delivered.body, time.time()
            )
            trigger = orjson.loads(delivered.body)
            assert (trigger["rule_id"], trigger["customer_id"]) == (
                "first-purchase-thank-you",
                "c-42",
            )
            assert [r.status for r in hook.received] == [500, 200]

        shown = engage(cli_env, "webhooks", "log")
        assert "delivered" in shown.stdout and "retry" in shown.stdout

        with chromium_page() as page:
            page.goto(url + "/")
            page.fill("#key", read_key)
            page.click("#login-form button")
            page.wait_for_selector("#app:not([hidden])")
            page.fill("#search", "c-42")
            page.click("#search-form button")
            page.wait_for_selector("#customer:not([hidden])")
            assert "Customer c-42" in page.inner_text("#customer-title")
            assert "49.9" in page.inner_text("#customer-360")
            assert "trigger first-purchase-thank-you" in page.inner_text("#timeline")
            assert_not_blank(page.screenshot(full_page=True))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output
    assert "Traceback" not in output
