"""``crosses:`` and ``enters:``: the two shorthands that compare before with after.

They run as plain Python before any CEL, because they are the most common
shapes (thresholds, stage changes) and most events do not cross anything, so
the cheap comparison rejects the event before a CEL context is built. Both are
edge-triggered by construction: they hold on the one event (or instant) where
the value moves across the line, not on every later event beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from events.model import Micros
from projections.profile import Profile
from rules.rule_fields import Getter


@dataclass(frozen=True, slots=True)
class Crossing:
    """``field`` moves from below ``at`` to ``at`` or more (``up``), or from
    ``at`` or more to below it (``down``)."""

    field: str
    at: float
    direction: Literal["up", "down"]
    getter: Getter

    def test(self, before: Profile, before_at: Micros, after: Profile, after_at: Micros) -> bool:
        old = self.getter(before, before_at)
        new = self.getter(after, after_at)
        if old is None or new is None:
            return False
        if self.direction == "up":
            return bool(old < self.at <= new)
        return bool(new < self.at <= old)

    def details(self, after: Profile, after_at: Micros) -> dict[str, Any]:
        return {self.field: self.getter(after, after_at), "threshold": self.at}


@dataclass(frozen=True, slots=True)
class Entering:
    """The lifecycle stage becomes ``stage`` (from any other stage)."""

    stage: str
    getter: Getter

    def test(self, before: Profile, before_at: Micros, after: Profile, after_at: Micros) -> bool:
        return bool(
            self.getter(after, after_at) == self.stage
            and self.getter(before, before_at) != self.stage
        )

    def details(self, after: Profile, after_at: Micros) -> dict[str, Any]:
        return {"lifecycle_stage": self.stage}


Guard = Crossing | Entering
