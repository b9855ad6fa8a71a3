"""``GET /v1/dlq``: the dead-letter store, newest last, paged backwards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from engage.http import models
from engage.http.deps import AUTH_ERRORS, Context, ReadKey, errors, json_response

router = APIRouter()


@router.get(
    "/v1/dlq",
    summary="The dead-letter store, newest last",
    responses={200: {"model": models.DeadLetters}, **errors(AUTH_ERRORS)},
)
def get_dlq(
    _: ReadKey,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    with ctx.borrow() as engine:
        letters = engine.dead_letters.list(limit, before)
        total = engine.dead_letters.count()
        older = bool(letters) and bool(engine.dead_letters.list(1, letters[0].id))
    next_before = letters[0].id if older else None
    items = [d.as_json() for d in letters]
    return json_response({"total": total, "items": items, "next_before": next_before})
