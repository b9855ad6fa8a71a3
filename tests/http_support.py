"""Shared pieces for the HTTP, webhook and dashboard tests: a real loopback
webhook receiver, API clients with keys, and waiting helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient

from engage.config import Settings
from engage.http.app import create_app
from engage.http.keys import ApiKeys
from engage.http.serve_config import ServeConfig


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """A real HTTP server on loopback: answers ``statuses`` in turn (then 200),
    optionally blocking each request until ``release`` is set."""

    statuses: list[int] = field(default_factory=list)
    release: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""
    started: threading.Event = field(default_factory=threading.Event)

    def ok(self) -> list[Received]:
        return [r for r in self.received if r.status == 200]


@contextmanager
def receiver(statuses: list[int] | None = None, *, block: bool = False) -> Iterator[Receiver]:
    state = Receiver(list(statuses or []), threading.Event() if block else None)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.started.set()
            if state.release is not None:
                state.release.wait(30)
            with lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.received.append(Received(body, dict(self.headers.items()), status))
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the client timed out and went away
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.release is not None:
            state.release.set()
        server.shutdown()
        server.server_close()


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until ``check()``; the timeout only bounds a hang, it is not a speed test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Api:
    client: TestClient
    ingest_key: str
    read_key: str

    def post(self, body: Any, key: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {key or self.ingest_key}"}
        if isinstance(body, bytes | str):
            return self.client.post("/v1/events", content=body, headers=headers, **kw)
        return self.client.post("/v1/events", json=body, headers=headers, **kw)

    def get(self, path: str, key: str | None = None, **kw: Any) -> Any:
        return self.client.get(
            path, headers={"Authorization": f"Bearer {key or self.read_key}"}, **kw
        )


@contextmanager
def api_client(settings: Settings, config: ServeConfig | None = None) -> Iterator[Api]:
    keys = ApiKeys(str(settings.database_url))
    try:
        _, ingest = keys.create("shop", "ingest")
        _, read = keys.create("dashboard", "read")
    finally:
        keys.close()
    app = create_app(settings, config or ServeConfig(process=False, deliver=False, pool_size=2))
    with TestClient(app) as client:
        yield Api(client, ingest, read)


@contextmanager
def live_server(settings: Settings, config: ServeConfig) -> Iterator[str]:
    """The app under a real uvicorn server on a loopback port, in a thread."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, config), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def make_keys(settings: Settings) -> tuple[str, str]:
    keys = ApiKeys(str(settings.database_url))
    try:
        return keys.create("shop", "ingest")[1], keys.create("dashboard", "read")[1]
    finally:
        keys.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A Playwright page in Debian's chromium (CI installs it in .ci/run)."""
    import os

    import pytest

    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} is missing; .ci/run installs it")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            yield page
        finally:
            browser.close()


def assert_not_blank(png: bytes) -> None:
    """A screenshot with real content: many colours, no single colour dominating."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    total = image.width * image.height
    assert len(colours) > 50, f"only {len(colours)} colours: a blank page?"
    assert max(n for n, _ in colours) < 0.95 * total, "one colour covers the page"
