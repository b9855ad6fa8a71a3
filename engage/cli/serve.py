"""``engage serve``: the HTTP API, the dashboard, and (by default) the
processor and webhook delivery in the same process."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import replace
from typing import Annotated

import typer

from engage.cli.app import app, err
from engage.cli.rules import RulesOption
from engage.errors import ConfigError
from engage.http.serve_config import MAX_BODY, MAX_EVENTS, ServeConfig
from engage.runtime import Engine


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    process: Annotated[
        bool,
        typer.Option(
            "--process/--no-process",
            help="Also run the processor, so posted events reach profiles and triggers "
            "(turn off when `engage run` workers do it).",
        ),
    ] = True,
    deliver: Annotated[
        bool,
        typer.Option(
            "--deliver/--no-deliver",
            help="Also deliver triggers to webhook subscriptions (turn off when "
            "`engage webhooks deliver` does it).",
        ),
    ] = True,
    rules: RulesOption = None,
    max_body: Annotated[
        int, typer.Option(min=1024, help="Largest accepted request body, in bytes.")
    ] = MAX_BODY,
    max_events: Annotated[int, typer.Option(min=1, max=1000, help="Most events per POST.")] = (
        MAX_EVENTS
    ),
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
) -> None:
    """Start the HTTP API (OpenAPI at /docs) and the marketing dashboard (at /).

    Every /v1 endpoint needs `Authorization: Bearer KEY` from `engage keys
    create`. Ctrl-C stops the server cleanly.
    """
    import uvicorn

    from engage.http.app import create_app

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with Engine.open(rules=rules) as engine:  # resolves the database once, for every part
        settings = replace(engine.settings, database_url=engine.dsn)
        config = ServeConfig(
            max_body=max_body,
            max_events=max_events,
            process=process,
            deliver=deliver,
            rules=engine.rules,
        )
        application = create_app(settings, config)
        parts = ["API", "dashboard"] + (["processor"] if process else [])
        parts += ["webhook delivery"] if deliver else []
        err.print(
            f"engage serve: {', '.join(parts)} on http://{host}:{port}/ "
            f"(API docs at /docs); Ctrl-C to stop",
            markup=False,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the
        # signal; engage.cli.main's handler turns it into KeyboardInterrupt, so
        # the engine closes and the embedded server is stopped on the way out
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                application,
                host=host,
                port=port,
                log_level="warning",
                access_log=access_log,
                server_header=False,
            )
        err.print("engage serve: stopped")
