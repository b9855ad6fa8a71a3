"""OpenAPI links: how the answer of one operation feeds the next.

They document the API's chains for client authors (a published event's
customer is read at ``/v1/customers/{customer_id}``; each page's cursor leads
to the next) and let schemathesis test the API statefully, following real
ids and cursors instead of random ones that only ever reach 404s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI

_LINKS: Final[dict[tuple[str, str], dict[str, tuple[str, str, dict[str, str]]]]] = {
    ("/v1/events", "post"): {
        "CustomerOfEvent": (
            "/v1/customers/{customer_id}",
            "get",
            {"customer_id": "$request.body#/customer_id"},
        ),
        "TimelineOfEvent": (
            "/v1/customers/{customer_id}/timeline",
            "get",
            {"customer_id": "$request.body#/customer_id"},
        ),
    },
    ("/v1/customers", "get"): {
        "FoundCustomer": (
            "/v1/customers/{customer_id}",
            "get",
            {"customer_id": "$response.body#/items/0/customer_id"},
        ),
    },
    ("/v1/customers/{customer_id}", "get"): {
        "TimelineOfCustomer": (
            "/v1/customers/{customer_id}/timeline",
            "get",
            {"customer_id": "$response.body#/customer_id"},
        ),
        "TriggersOfCustomer": (
            "/v1/triggers",
            "get",
            {"customer_id": "$response.body#/customer_id"},
        ),
    },
    ("/v1/customers/{customer_id}/timeline", "get"): {
        "NextTimelinePage": (
            "/v1/customers/{customer_id}/timeline",
            "get",
            {"customer_id": "$response.body#/customer_id", "cursor": "$response.body#/next_cursor"},
        ),
    },
    ("/v1/triggers", "get"): {
        "NextTriggerPage": (
            "/v1/triggers",
            "get",
            {"cursor": "$response.body#/next_cursor"},
        ),
    },
    ("/v1/dlq", "get"): {
        "OlderDeadLetters": ("/v1/dlq", "get", {"before": "$response.body#/next_before"}),
    },
}


_BAD_REQUEST_LINE: Final = {
    "description": "The path or query holds a NUL or is not UTF-8 (``engage.http.security``).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def add_links(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the links (by operationId, as generated),
    and the 400 the hardening middleware may answer to any operation."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        paths = schema.get("paths", {})
        for item in paths.values():
            for operation in item.values():
                operation.setdefault("responses", {}).setdefault("400", _BAD_REQUEST_LINE)
        for (path, method), links in _LINKS.items():
            response = paths.get(path, {}).get(method, {}).get("responses", {}).get("200")
            if response is None:
                continue
            response["links"] = {
                name: {
                    "operationId": paths[target][target_method]["operationId"],
                    "parameters": parameters,
                }
                for name, (target, target_method, parameters) in links.items()
                if target_method in paths.get(target, {})
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
