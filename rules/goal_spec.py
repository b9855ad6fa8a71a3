"""The checks of a rule's ``goal:`` and ``holdout:``, apart from the YAML walk
(``rules.loader`` finds the node and the line; this says what is wrong)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from events.model import EVENT_TYPES, Micros
from rules.expressions import Expression, ExpressionError
from rules.firing import Scope
from rules.model import Goal, Needs
from rules.samples import SAMPLE_AT, sample_event, sample_profile

MAX_HOLDOUT: Final = 0.5


class GoalError(ValueError):
    """``key``: the part of the goal (types, within, when) that is wrong."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def holdout_of(value: object) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_HOLDOUT
    ):
        raise ValueError(f"expected a fraction from 0 to {MAX_HOLDOUT}, got {value!r}")
    return float(value)


def goal_of(
    types: Sequence[object], within: Micros, when: Expression | None, needs: Needs | None
) -> Goal:
    """A checked goal; ``when`` (with the fields it reads) is tried on a sample
    event of each type, as the loader tries every rule's expressions."""
    names = tuple(dict.fromkeys(str(t) for t in types))
    if not names:
        raise GoalError("types", "name at least one event type")
    for name in names:
        if name not in EVENT_TYPES:
            raise GoalError(
                "types", f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}"
            )
    if within <= 0:
        raise GoalError("within", "expected a positive duration, e.g. 14d")
    if when is None or needs is None:
        return Goal(names, within)
    if "before" in when.roots:
        raise GoalError("when", "reads the goal event and the profile after it (event, after)")
    profile = sample_profile()
    for name in names:
        event = sample_event(name)
        context = Scope(needs, profile, SAMPLE_AT - 1, profile, SAMPLE_AT, event).context()
        try:
            value = when.run(context)
        except ExpressionError as exc:
            raise GoalError("when", f"{exc.reason} (tried on a sample {name} event)") from None
        if not isinstance(value, bool):
            raise GoalError("when", f"must be true or false, got {value!r}")
    return Goal(names, within, when, needs)
