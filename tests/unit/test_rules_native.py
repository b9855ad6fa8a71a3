"""The native fast path agrees with CEL wherever it decides, and defers otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import Touchpoint
from projections.profile import Profile
from rules.expressions import compile_expression
from rules.firing import Scope
from rules.model import Needs
from rules.native import compile_native, compile_native_value
from rules.rule_fields import field_getter
from tests.unit.test_rules_support import T0

PATHS = [
    "after.order_count",
    "before.order_count",
    "after.lifetime_spend",
    "after.nps_last",
    "after.subscribed",
    "after.average_order_value",
    "event.properties.score",
    "event.properties.survey",
    "event.properties.missing",
    "event.type",
]
LITERALS = ["0", "1", "6", "-2", "2.5", "1000", "1000.0", "'nps'", "'csat'", "''", "true", "false"]
OPS = ["==", "!=", "<", "<=", ">", ">="]


def _needs(source: str) -> Needs:
    expression = compile_expression(source)
    fields = expression.fields
    return Needs(
        tuple((n, field_getter(n)) for n in sorted(fields.get("before", ()))),
        tuple((n, field_getter(n)) for n in sorted(fields.get("after", ()))),
        tuple(sorted(fields.get("event", ()))),
    )


operand = st.sampled_from(PATHS + LITERALS)
comparison = st.tuples(operand, st.sampled_from(OPS), operand).map(" ".join)
conditions = st.lists(comparison, min_size=1, max_size=3).map(" && ".join)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    orders = draw(st.integers(0, 3))
    return Profile(
        "c",
        order_count=orders,
        purchase_total=draw(st.sampled_from([0.0, 2.5, 999.99, 1000.0, 1500.0])),
        subscribed=draw(st.booleans()),
        nps_last=draw(st.one_of(st.none(), st.integers(0, 10))),
        nps_count=1,
    )


events = st.builds(
    lambda survey, score: Touchpoint(
        "e", "c", "survey_response", T0, "survey", properties={"survey": survey, "score": score}
    ),
    st.sampled_from(["nps", "csat"]),
    st.integers(0, 10),
)


@settings(max_examples=400, deadline=None)
@given(conditions, profiles(), profiles(), events)
def test_native_agrees_with_cel(source: str, before: Profile, after: Profile, event: Any) -> None:
    native = compile_native(source)
    assert native is not None
    verdict = native.judge(before, T0, after, T0, event)
    if verdict is None:
        return
    context = Scope(_needs(source), before, T0, after, T0, event).context()
    assert verdict == compile_expression(source).test(context), source


@pytest.mark.parametrize(
    "source",
    [
        "after.lifecycle_stage in ['at_risk']",
        "(after.order_count > 1)",
        "after.order_count > 1 || after.order_count == 0",
        "size(after.counts_by_type) > 1",
        "after.nps_last == null",
        "after.order_count > 1 &&",
        "after.order_count > 1u",
        "after.order_count > 1e3",
        "after.order_count + 1 > 2",
        "!after.subscribed",
        "after.order_count",
        "after.no_such_field > 1",
        "event.properties.a.b == 1",
        "'a\\'b' == event.type",
    ],
)
def test_other_shapes_get_no_fast_path(source: str) -> None:
    assert compile_native(source) is None


def test_simple_shapes_get_one() -> None:
    assert compile_native("after.opens_60d >= 5 && after.clicks_60d == 0") is not None
    assert compile_native("event.properties.survey == 'nps' && event.properties.score <= 6")
    assert compile_native("before.lifetime_spend < after.lifetime_spend") is not None
    assert compile_native_value("event.properties.case_id") is not None
    assert compile_native_value("event.properties.case_id + 'x'") is None
