"""What the server serves that is not the API: the dashboard and the
interactive API docs, both from installed packages, nothing from the internet.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN, so it was blank
offline or behind a firewall. Here it is self-hosted as FastAPI documents
("Custom Docs UI Static Assets"): the JavaScript and CSS come from the
``swagger-ui-py`` package (Swagger UI 5, which reads the OpenAPI 3.1 document
FastAPI writes; ``swagger-ui-bundle`` ships Swagger UI 4, which cannot), and
the page's external validator badge is turned off.
"""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from engage.errors import ConfigError

DOCS = "/docs"
DOCS_ASSETS = "/docs/assets"


def swagger_ui_dir() -> Path:
    """The package's asset folder, found without importing the package (its
    ``__init__`` loads handlers for other web frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the swagger-ui-py package is not installed (pip install swagger-ui-py)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install(app: FastAPI) -> None:
    """Add ``/`` (the dashboard), ``/static``, ``/docs`` and its assets to ``app``,
    which must be created with ``docs_url=None, redoc_url=None``."""
    static = files("engage.http").joinpath("static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(static.joinpath("index.html").read_text())

    app.mount("/static", StaticFiles(packages=[("engage.http", "static")]), name="static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_dir()), name="docs-assets")
    redirect = f"{DOCS}/oauth2-redirect"

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=redirect,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
