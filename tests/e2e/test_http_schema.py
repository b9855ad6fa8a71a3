"""The API against its own OpenAPI document (schemathesis, bounded examples):
no server errors, only documented status codes, content types and bodies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from engage.config import Settings
from engage.http.routes.segment import CALLS
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.helpers import event, lines, publish
from tests.http_support import live_server, make_keys


@pytest.fixture
def served(settings: Settings, engine: Engine) -> Iterator[tuple[Any, str, str, str]]:
    publish(
        engine,
        lines(event("e1", "ann", "purchase", "2026-03-01T10:00:00Z", order_id="o1", amount=5)),
    )
    engine.processor().run(until_idle=True)
    ingest, read = make_keys(settings)
    with live_server(settings, ServeConfig(process=False, deliver=False, pool_size=2)) as url:
        yield schemathesis.openapi.from_url(url + "/openapi.json"), url, ingest, read


INGEST_PATHS = {"/v1/events", "/v1/batch", "/v1/import", *(f"/v1/{c}" for c in CALLS)}
"""The paths an ingest key may post to (the others take a read key)."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_conforms_to_its_openapi_document(served: tuple[Any, str, str, str]) -> None:
    schema, url, ingest, read = served
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/events", "/v1/customers/{customer_id}"}
    for operation in operations:
        _check(operation, url, ingest if operation.path in INGEST_PATHS else read)


def _check(operation: Any, url: str, key: str) -> None:
    """Bounded examples for one operation, with the key its scope needs."""

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
        )

    check()
