"""Privacy requests over HTTP, for an ``admin`` key only: erasure
(``DELETE /v1/customers/{id}``) and the access export
(``GET /v1/customers/{id}/export``). The same steps as ``engage privacy``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from engage.access import export_person, now_iso
from engage.erasure import erase
from engage.errors import NotFound
from engage.http.deps import AUTH_ERRORS, AdminKey, Context, errors, json_response

router = APIRouter()


@router.delete(
    "/v1/customers/{customer_id}",
    summary="Erase a person (GDPR art. 17, LGPD art. 18)",
    description=(
        "Destroys the person's key (their text on the log becomes unreadable), deletes "
        "or shreds everything derived from them, appends subject_erased to the log (a "
        "replay builds no profile for them) and refuses their new events until "
        "`engage privacy unsuppress`. Answers the receipt: every store checked. Safe to "
        "repeat."
    ),
    responses=errors(AUTH_ERRORS),
)
def delete_customer(
    customer_id: str,
    key: AdminKey,
    ctx: Context,
    reason: Annotated[
        str, Query(min_length=1, max_length=1000, description="Why: the request, its reference.")
    ],
) -> Response:
    with ctx.borrow() as engine:
        receipt = erase(engine, customer_id, f"{reason} (HTTP, key {key.name!r})")
    return json_response(receipt.as_json())


@router.get(
    "/v1/customers/{customer_id}/export",
    summary="Everything held about a person, decrypted (the right of access)",
    responses=errors({**AUTH_ERRORS, 404: "Nothing is held about this id."}),
)
def export_customer(customer_id: str, _: AdminKey, ctx: Context) -> Response:
    try:
        with ctx.borrow() as engine:
            held = export_person(engine, customer_id, now_iso())
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return json_response(held)
