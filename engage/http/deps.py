"""What every route module shares: the app's context, API-key scopes, JSON
answers and the documented error responses.

Routes live in ``engage.http.routes``, one module per resource; they reach
the engine pool and the key store through ``AppContext`` (set on
``app.state`` by ``create_app``), never through globals, so two apps in one
process (as the tests run them) never share state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engage.config import Settings
from engage.http import models
from engage.http.keys import ApiKey, ApiKeys
from engage.http.metrics import Metrics
from engage.http.pool import EnginePool
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from events.timefmt import parse_named


@dataclass
class AppContext:
    """One app's shared parts; the pool and keys exist while the app runs."""

    settings: Settings
    config: ServeConfig
    metrics: Metrics
    pool: EnginePool | None = None
    keys: ApiKeys | None = None
    ingest_slots: threading.Semaphore = field(init=False)
    """Segment-compatible ingest requests in flight; when none is free the
    answer is 429 with Retry-After, as Segment's SDKs expect under overload."""

    def __post_init__(self) -> None:
        self.ingest_slots = threading.Semaphore(self.config.max_ingest_inflight)

    def borrow(self) -> AbstractContextManager[Engine]:
        """An engine from the pool for the length of a ``with`` block."""
        if self.pool is None:
            raise HTTPException(503, "the server is starting or stopping; retry shortly")
        return self.pool.borrow()


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.engage
    return ctx


Context = Annotated[AppContext, Depends(context)]

bearer = HTTPBearer(auto_error=False, description="An API key from `engage keys create`.")

SCOPE_NAMES: Final = {"ingest": "an ingest key", "read": "a read key", "admin": "an admin key"}


def check_key(ctx: AppContext, secret: str | None, scope: str) -> ApiKey:
    """The key named by ``secret`` if it exists and has ``scope``; else 401/403.

    Shared by bearer auth and by ingest formats that carry the key elsewhere
    (for example a body's ``writeKey`` or Basic auth)."""
    if not secret:
        raise HTTPException(
            401,
            "missing API key: send `Authorization: Bearer KEY` "
            "(create one with `engage keys create NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if ctx.keys is None:
        raise HTTPException(503, "the server is starting or stopping; retry shortly")
    found = ctx.keys.lookup(secret)
    if found is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if found.scope != scope:
        raise HTTPException(
            403,
            f"this key has scope {found.scope!r}; this endpoint needs "
            + SCOPE_NAMES.get(scope, f"a {scope} key"),
        )
    return found


def require(scope: str) -> Callable[..., ApiKey]:
    """A dependency that admits a bearer key of ``scope``."""

    def dependency(
        ctx: Context,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        return check_key(ctx, creds.credentials if creds else None, scope)

    return dependency


IngestKey = Annotated[ApiKey, Depends(require("ingest"))]
ReadKey = Annotated[ApiKey, Depends(require("read"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself (to keep
    the raw text of a refused one): the body's schema for the document."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def errors(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error codes, each with the error body's model."""
    return {code: {"model": models.Error, "description": text} for code, text in codes.items()}


AUTH_ERRORS: Final = {
    401: "No API key, or an unknown or revoked one.",
    403: "Wrong scope.",
    422: "A bad parameter.",
}


def parse_time(value: str | None, name: str) -> int | None:
    """An optional ISO 8601 query parameter, as microseconds; 422 when bad."""
    return parse_named(value, name, _unprocessable)


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(422, message)
