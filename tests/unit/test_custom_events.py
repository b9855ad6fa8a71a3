"""Custom touchpoints: the profile counts them by name, rules match them by name."""

from __future__ import annotations

import pytest
from hypothesis import given

from events.model import Touchpoint
from projections.customer360 import customer_360
from rules import load_rules_text
from rules.harness import replay
from rules.model import RuleError
from tests.unit.strategies import histories
from tests.unit.test_rules_support import History, at, fold

CART_RULE = """\
- id: cart-reminder
  version: 1
  kind: cart_abandoned
  audience: marketing
  on: event
  types: [custom, purchase]
  names: [Cart Abandoned]
  once_per: event
"""


@given(histories(types=["custom", "purchase", "web_visit"], max_size=30))
def test_custom_counts_by_name_sum_to_the_custom_count(events: list[Touchpoint]) -> None:
    profile = fold(events)
    if profile is None:
        return
    names = [e.properties["name"] for e in events if e.type == "custom"]
    assert sum(profile.custom_counts.values()) == profile.counts_by_type.get("custom", 0)
    assert profile.custom_counts == {n: names.count(n) for n in set(names)}


def test_the_360_shows_custom_counts() -> None:
    h = History()
    h.add("custom", 0, name="Product Viewed")
    h.add("custom", 1, name="Product Viewed")
    h.add("custom", 2, name="Cart Abandoned")
    profile = fold(h.events)
    assert profile is not None
    view = customer_360(profile, at(3))
    assert view["custom_counts"] == {"Cart Abandoned": 1, "Product Viewed": 2}
    assert view["counts_by_type"] == {"custom": 3}


def test_a_rule_matches_a_custom_event_by_name_and_leaves_other_types_alone() -> None:
    rules = load_rules_text(CART_RULE)
    h = History()
    h.add("custom", 0, name="Product Viewed")
    cart = h.add("custom", 1, name="Cart Abandoned")
    buy = h.purchase(2, 10)
    fired = replay(rules, h.events).triggers
    assert [t.caused_by for t in fired] == [(cart.event_id,), (buy.event_id,)]


def test_names_needs_custom_in_types() -> None:
    bad = CART_RULE.replace("types: [custom, purchase]", "types: [purchase]")
    with pytest.raises(RuleError, match="names: only for rules whose types include custom"):
        load_rules_text(bad)
    empty = CART_RULE.replace("names: [Cart Abandoned]", "names: []")
    with pytest.raises(RuleError, match="names: name at least one"):
        load_rules_text(empty)
