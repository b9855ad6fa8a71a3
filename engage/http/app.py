"""The HTTP API and dashboard: a thin composition root over the Engine's ports.

``create_app`` wires the parts together: the engine pool and key store
(``deps.AppContext``), the routes (``engage.http.routes``, one module per
resource), error answers, the dashboard's assets, and, in ``engage serve``,
the processor and webhook delivery as supervised background jobs
(``consumers.supervisor``). Handlers call the same functions the CLI calls
(the engine's one publish step, ``projections.queries``, the dead-letter
store) and return the contract JSON; nothing here validates events.
"""

import logging
import threading
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.supervisor import Supervisor
from consumers.webhooks import WebhookDeliverer
from engage.config import Settings
from engage.errors import EngageError
from engage.http import assets
from engage.http.deps import AppContext, json_response
from engage.http.keys import ApiKeys
from engage.http.metrics import Metrics
from engage.http.openapi_links import add_links
from engage.http.pool import EnginePool
from engage.http.routes import ROUTERS
from engage.http.security import harden
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine

log = logging.getLogger("engage.http")

DESCRIPTION = (
    "Touchpoints in, customer-360 profiles and lifecycle triggers out. Every /v1 "
    "endpoint needs `Authorization: Bearer KEY` (`engage keys create NAME "
    "[--scope ingest|read]`): an ingest key may only POST events, a read key may "
    "only read."
)


def create_app(settings: Settings, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app; ``settings.database_url`` should already be resolved."""
    ctx = AppContext(settings, config or ServeConfig(), Metrics())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        ctx.pool = EnginePool(settings, ctx.config.pool_size, ctx.config.rules)
        ctx.keys = ApiKeys(ctx.pool.dsn)
        ctx.metrics.bind(ctx.pool)
        supervisor = Supervisor()
        if ctx.config.process:
            supervisor.start("processor", lambda stop: _process(settings, ctx.config, stop))
        if ctx.config.deliver:
            supervisor.start("webhooks", lambda stop: _deliver(settings, ctx.config, stop))
        try:
            yield
        finally:
            supervisor.close()
            ctx.keys.close()
            ctx.pool.close()
            ctx.keys = ctx.pool = None

    app = FastAPI(
        title="Engage",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.engage = ctx
    harden(app)
    add_links(app)
    _answer_errors_as_json(app)
    for router in ROUTERS:
        app.include_router(router)
    assets.install(app)  # the dashboard and /docs, served from packages
    return app


def _answer_errors_as_json(app: FastAPI) -> None:
    """Every error is ``{"error": "..."}`` with a sentence a person can act on."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        response = json_response({"error": str(exc.detail)}, exc.status_code)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return json_response({"error": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(EngageError)
    async def engage_error(_: Request, exc: EngageError) -> Response:
        log.warning("request failed: %s", exc)
        return json_response({"error": str(exc)}, 503)

    @app.exception_handler(psycopg.Error)
    async def database_error(_: Request, exc: psycopg.Error) -> Response:
        log.warning("request failed: %s", exc)
        return json_response({"error": "the database is unavailable; retry shortly"}, 503)


def _process(settings: Settings, config: ServeConfig, stop: threading.Event) -> None:
    """The embedded processor inside ``engage serve``; after a restart it
    carries on from the committed offsets."""
    with Engine.open(settings, config.rules) as engine:
        engine.processor(live=True).run(until_idle=False, stop=stop, idle_wait=0.5)


def _deliver(settings: Settings, config: ServeConfig, stop: threading.Event) -> None:
    """Webhook delivery inside ``engage serve``."""
    with Engine.open(settings, config.rules) as engine:
        WebhookDeliverer(
            engine.dsn, engine.stream, config.policy, poll_s=config.poll_s, on_error=log.warning
        ).run(stop)
