"""``engage webhooks listen``: a local endpoint to try webhooks with.

Trying webhooks used to need an endpoint of your own first. This one prints
each delivery (the trigger JSON) and whether its signature verifies, and
answers 200 (or 401 when it does not verify), so the HTTP walk-through (docs/http.md)
works on one machine with nothing else installed.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import orjson
import typer

from consumers.webhook_signature import HEADER, SignatureError, verify
from engage.cli.app import err
from engage.cli.webhooks import hooks_app
from engage.errors import ConfigError


@hooks_app.command("listen")
def listen(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port on 127.0.0.1.")] = 9000,
    secret: Annotated[
        str | None,
        typer.Option(help="The subscription's signing secret, to verify each delivery."),
    ] = None,
) -> None:
    """Receive webhook deliveries on http://127.0.0.1:PORT/ and print them, one
    line each, with the signature check (for trying webhooks locally; Ctrl-C)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, check = 200, "signature not checked (no --secret)"
            if secret is not None:
                try:
                    verify(secret, self.headers.get(HEADER), body, time.time())
                    check = "signature ok"
                except SignatureError as exc:
                    status, check = 401, f"signature refused: {exc}"
            try:
                trigger = orjson.loads(body)
                what = f"{trigger.get('rule_id')} for {trigger.get('customer_id')}"
            except orjson.JSONDecodeError:
                what = f"{len(body)} bytes, not JSON"
            sys.stdout.write(f"{what}; {check}; {body.decode(errors='replace')}\n")
            sys.stdout.flush()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    err.print(
        f"listening for webhook deliveries on http://127.0.0.1:{port}/; Ctrl-C to stop",
        markup=False,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (engage.cli.main)
        pass
    finally:
        server.server_close()
