"""Request and response hardening for the HTTP app, as one ASGI middleware.

Two things every route needs and no route should repeat:

* a client error stays a client error: a NUL (``%00``) in a path or query
  would reach PostgreSQL, which cannot store it, and come back as "database
  unavailable" (503) after the engine reconnected. It is refused here with a
  400 in the API's JSON error shape before any handler runs;
* browsers get the headers that keep the dashboard from being framed,
  sniffed or made to run injected script (``Content-Security-Policy``,
  ``X-Frame-Options``, ``X-Content-Type-Options``, ``Referrer-Policy``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""FastAPI's /docs and /redoc pages load their viewer from a CDN with an inline
starter script; they hold no data until a key is typed, so they get what
they need and nothing more."""
ALWAYS: Final = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


def _html_headers(path: str) -> tuple[tuple[bytes, bytes], ...]:
    csp = DOCS_CSP if path.startswith(("/docs", "/redoc")) else CSP
    return ((b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"))


log = logging.getLogger("engage.http")


def harden(app: FastAPI) -> None:
    """Install the middleware, and a last-resort handler so that even a bug
    answers in the API's JSON error shape (never a plain-text 500 page)."""
    app.add_middleware(Hardening)

    async def internal_error(_: Request, exc: Exception) -> Response:
        log.exception("internal error: %s", exc)
        body = orjson.dumps({"error": "internal error; the server log has the details"})
        return Response(body, status_code=500, media_type="application/json")

    app.add_exception_handler(Exception, internal_error)


def request_problem(scope: Scope) -> str | None:
    """Why the request line cannot be served, or None."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    for where, raw in (("path", raw_path), ("query", query)):
        data = unquote_to_bytes(raw.replace(b"+", b" ") if where == "query" else raw)
        if b"\x00" in data:
            return f"the {where} contains a NUL character (%00), which no id or value may hold"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the {where} is not valid UTF-8 once percent-decoded (byte {exc.start})"
    return None


class Hardening:
    """The middleware: refuse unservable request lines, add security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = request_problem(scope)
        if problem is not None:
            body = orjson.dumps({"error": problem})
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *ALWAYS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = list(ALWAYS)
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra.extend(_html_headers(scope.get("path", "")))
                headers.extend((k, v) for k, v in extra if k not in names)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
