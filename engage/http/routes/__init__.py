"""The HTTP API's routes, one module per resource.

Each module exposes ``router``; ``engage.http.app.create_app`` includes them
in ``ROUTERS`` order. A new resource is a new module here plus one line below.
"""

from fastapi import APIRouter

from engage.http.routes import (
    contact,
    customers,
    dlq,
    events,
    identity,
    kpis,
    outcomes,
    privacy,
    segment,
    status,
    triggers,
)

ROUTERS: tuple[APIRouter, ...] = (
    events.router,
    segment.router,
    customers.router,
    privacy.router,
    identity.router,
    contact.router,  # /v1/triggers/latest before /v1/triggers/{...} routes
    triggers.router,
    kpis.router,
    dlq.router,
    status.router,
    outcomes.router,
)
