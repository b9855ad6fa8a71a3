"""Which touchpoints the processor must open (decrypt) before the rules run.

Personal fields are sealed on the log (``events.sealing``); opening one costs
a key unwrap per person and an AES-GCM call per event, so the pipeline opens
only what is read: ``identify`` (the fold keeps the email and name for the
360) and the types of event rules whose conditions, keys or details may read
a personal field. The test is on the expression text and errs towards
opening: any ``event.extra``, a personal property name, an index or a macro
over ``event.properties``, or the map used whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from events.model import PERSONAL_PROPERTIES
from rules.expressions import Expression
from rules.model import Rule, RuleSet

ALWAYS: Final = frozenset({"identify"})
_NAMES: Final = sorted({n for names in PERSONAL_PROPERTIES.values() for n in names})
_MACROS: Final = ("all", "exists", "exists_one", "map", "filter", "size")
_PERSONAL_READ: Final = re.compile(
    r"\bevent\s*\.\s*extra\b"
    r"|\bevent\s*\.\s*properties\s*(?:\[|\.\s*(?:" + "|".join((*_NAMES, *_MACROS)) + r")\b)"
    r"|\bevent\s*\.\s*properties\b(?!\s*\.\s*\w)"
    r"|\bevent\b(?!\s*\.)"
)
"""A read that may reach a personal value (``event`` alone: the whole event)."""


def _expressions(rule: Rule) -> Iterator[Expression]:
    if rule.when is not None:
        yield rule.when
    if rule.once_per is not None and rule.once_per.key is not None:
        yield rule.once_per.key
    for _, expression in rule.details:
        yield expression


def opened_types(rules: RuleSet | None) -> frozenset[str]:
    """The touchpoint types whose sealed fields the pipeline opens."""
    types = set(ALWAYS)
    for rule in rules.rules if rules is not None else ():
        if any(_PERSONAL_READ.search(e.source) for e in _expressions(rule)):
            types.update(rule.types)
    return frozenset(types)
