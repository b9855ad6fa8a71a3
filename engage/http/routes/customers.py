"""Customers: search by id prefix, one customer's 360 (now or as of an
instant) and their timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response, parse_time
from engage.http.paging import TIMELINE_LIMIT, TIMELINE_MAX, timeline_page
from events.timefmt import format_optional
from projections.queries import timeline, unknown_customer

router = APIRouter()


@router.get(
    "/v1/customers",
    summary="Find customers by id prefix, or a person by any of its identifiers",
    responses={200: {"model": models.CustomerSearch}, **errors(AUTH_ERRORS)},
)
def search_customers(
    _: ReadKey,
    ctx: Context,
    q: Annotated[str, Query(max_length=128, description="customer_id prefix")] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    with ctx.borrow() as engine:
        hits = engine.store.search(q, limit)
        # an anonymous id or an email names its person: that person comes first
        person = engine.identity.find(q) if q.strip() else None
        if person is not None and all(c != person.person_id for c, _ in hits):
            found = engine.store.get(person.person_id)
            hits = [(person.person_id, None if found is None else found.last_seen), *hits]
            hits = hits[:limit]
    return json_response(
        {"items": [{"customer_id": c, "last_seen": format_optional(t)} for c, t in hits]}
    )


@router.get(
    "/v1/customers/{customer_id}",
    summary="One customer's 360",
    responses={
        200: {"model": models.Customer360},
        **errors({**AUTH_ERRORS, 404: "Unknown customer.", 422: "Bad as_of."}),
    },
)
def get_customer(
    customer_id: str,
    _: ReadKey,
    ctx: Context,
    as_of: Annotated[
        str | None, Query(description="ISO 8601 instant: the profile as it was then.")
    ] = None,
) -> Response:
    at = parse_time(as_of, "as_of")
    with ctx.borrow() as engine:
        view = engine.customer_view(customer_id, at)
    if view is None:
        raise HTTPException(404, unknown_customer(customer_id, as_of))
    return json_response(view)


@router.get(
    "/v1/customers/{customer_id}/timeline",
    summary="One customer's touchpoints and triggers in time order",
    responses={
        200: {"model": models.Timeline},
        **errors({**AUTH_ERRORS, 404: "Unknown customer."}),
    },
)
def get_timeline(
    customer_id: str,
    _: ReadKey,
    ctx: Context,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=TIMELINE_MAX)] = TIMELINE_LIMIT,
) -> Response:
    with ctx.borrow() as engine:
        items = timeline(engine.history, engine.codec, customer_id, engine.keys)
    if not items:
        raise HTTPException(404, unknown_customer(customer_id))
    page, next_cursor = timeline_page(items, cursor, limit)
    return json_response({"customer_id": customer_id, "items": page, "next_cursor": next_cursor})
