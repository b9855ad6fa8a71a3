"""The whole API, statefully (schemathesis): sequences of calls that follow the
OpenAPI links (a published event's customer, each page's cursor) against a
live server, with every response checked: no 5xx, only documented status
codes, content types and bodies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import Bundle, rule
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.stateful.state_machine import StepInput

from engage.config import Settings
from engage.http.serve_config import ServeConfig
from engage.runtime import Engine
from tests.e2e.test_http_schema import INGEST_PATHS
from tests.helpers import event, lines, publish
from tests.http_support import live_server, make_keys

ROUNDS = 4
MAX_ROUNDS = 16
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def served(settings: Settings, engine: Engine) -> Iterator[tuple[Any, str, str]]:
    publish(
        engine,
        lines(
            event("e1", "ann", "purchase", "2026-03-01T10:00:00Z", order_id="o1", amount=5),
            event("e2", "ann", "survey_response", "2026-03-02T10:00:00Z", survey="nps", score=2),
            "not json",
        ),
    )
    engine.processor().run(until_idle=True)
    ingest, read = make_keys(settings)
    with live_server(settings, ServeConfig(process=True, deliver=False, pool_size=2)) as url:
        yield schemathesis.openapi.from_url(url + "/openapi.json"), ingest, read


def test_api_statefully(served: tuple[Any, str, str]) -> None:
    schema, ingest, read = served
    raw = schema.raw_schema
    linked = [
        name
        for item in raw["paths"].values()
        for op in item.values()
        for name in op.get("responses", {}).get("200", {}).get("links", {})
    ]
    assert {"CustomerOfEvent", "NextTriggerPage", "NextTimelinePage", "OlderDeadLetters"} <= set(
        linked
    )
    base = schema.as_state_machine()
    calls: list[tuple[str, int]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis starts only from operations it judges to create resources
    # or list them; publishing is where every chain here starts, and the
    # operations no link reaches (KPIs, stats, status, health, metrics) are
    # part of the API too: each is made a root step, whose answers feed the
    # links like any other step's
    extra_roots = [
        op
        for op in operations
        if op.path == "/v1/events" or op.label not in base._transitions.operations
    ]

    def root(operation: Any, strategy: Any = None) -> Any:
        @rule(target=Bundle("catch_all"), case=strategy or operation.as_strategy())
        def step(self: Any, case: Any) -> Any:
            start = StepInput.initial(case)
            self.recorder.record_case(case=case)  # as schemathesis' own roots do,
            self.control.record_step(start, self.recorder)  # so links find their parent
            return self.step(start)

        return step

    def machine(starts: list[Any], seek_customer: bool = False) -> Any:
        roots = {f"root_{i}": root(op) for i, op in enumerate(starts)}
        if seek_customer:  # a search that lists everyone, so FoundCustomer has ids to follow
            search = next(op for op in operations if op.path == "/v1/customers")
            lists_all = search.as_strategy().filter(lambda c: not (c.query or {}).get("q"))
            roots["root_search_all"] = root(search, lists_all)

        class Machine(base):  # type: ignore[valid-type, misc]
            locals().update(roots)

            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                key = ingest if case.operation.path in INGEST_PATHS else read
                return {"headers": {"Authorization": f"Bearer {key}"}}

            def after_call(self, response: Any, case: Any) -> None:
                calls.append((case.operation.path, response.status_code))

            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

        return Machine

    # The server's state changes under the test (each publish adds data the
    # links then extract), which Hypothesis may notice as a strategy that
    # draws differently on a replay; schemathesis' own runner starts a new
    # round then, and so does this. Check failures still fail the test.
    # Exploration is random (Hypothesis enables a random subset of the rules
    # in each run), so a round may not reach every operation. Rounds go on
    # until every operation and a real customer were reached, up to a bound;
    # after the first ROUNDS, an operation still unreached becomes a root of
    # its own (with publishing, so the links still have ids to follow), and
    # while no link has reached a real customer, so does a search without a
    # prefix (random prefixes match no one; a published event's customer is
    # usually not processed yet when its link is followed).
    wanted = {op.path for op in operations}
    rounds = 0
    for attempt in range(MAX_ROUNDS):
        reached = {p for p, _ in calls}
        if (
            attempt >= ROUNDS
            and reached == wanted
            and (("/v1/customers/{customer_id}", 200) in calls)
        ):
            break
        starts = extra_roots
        seek = False
        if attempt >= ROUNDS:
            starts = [op for op in operations if op.path not in reached or op in extra_roots]
            seek = ("/v1/customers/{customer_id}", 200) not in calls
        try:
            machine(starts, seek).run(
                settings=hypothesis_settings(
                    max_examples=15,
                    stateful_step_count=6,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
            )
            rounds += 1
        except FlakyStrategyDefinition:
            continue
    assert rounds >= 1
    paths = {path for path, _ in calls}
    assert paths == wanted, sorted(paths)
    assert ("/v1/customers/{customer_id}", 200) in calls  # links were followed to real ids
    assert all(status < 500 for _, status in calls)
