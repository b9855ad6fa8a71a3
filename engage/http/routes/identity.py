"""Identity over HTTP: a person's links and conflicts (``GET /v1/identity/{id}``,
a read key) and the unlink (``POST /v1/identity/{person}/unlink``, an admin
key): the same steps as ``engage identity``."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engage.http.deps import AUTH_ERRORS, AdminKey, Context, ReadKey, errors, json_response
from projections.identity_json import person_json
from projections.identity_router import IdentityError

router = APIRouter()


class Unlink(BaseModel):
    identifier: str = Field(min_length=1, max_length=512, description="The identifier to take out.")
    reason: str = Field(min_length=1, max_length=1000, description="Why: it goes on the log.")


@router.get(
    "/v1/identity/{identifier}",
    summary="A person's identifiers, each link's evidence, and its conflicts",
    description="Any identifier names the person: a customer id, an anonymous id or an email.",
    responses=errors({**AUTH_ERRORS, 404: "No person has this identifier."}),
)
def get_identity(identifier: str, _: ReadKey, ctx: Context) -> Response:
    with ctx.borrow() as engine:
        person = engine.identity.find(identifier)
    if person is None:
        raise HTTPException(404, f"no person has the identifier {identifier!r}")
    return json_response(person_json(person))


@router.post(
    "/v1/identity/{person}/unlink",
    summary="Take an identifier out of a person (undo a merge)",
    description=(
        "Appends identity_unlinked to the log; the processor re-folds both sides from "
        "the log. The two identifiers never join again."
    ),
    responses=errors({**AUTH_ERRORS, 404: "No such person, or it lacks the identifier."}),
)
def unlink(person: str, body: Unlink, key: AdminKey, ctx: Context) -> Response:
    try:
        with ctx.borrow() as engine:
            entries = engine.unlink(
                person, body.identifier, f"{body.reason} (HTTP, key {key.name!r})"
            )
    except IdentityError as exc:
        raise HTTPException(404, str(exc)) from None
    return json_response({"appended": [e.record_id for e in entries]})
