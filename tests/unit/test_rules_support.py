"""Builders for crafted customer histories, shared by the rules tests.

Histories are written in days from a fixed start so each test reads like the
story it tells ("bought on day 0, opened five emails by day 20...").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from events.model import DAY, EVENT_TYPES, Micros, Touchpoint
from projections.evolve import evolve
from projections.profile import Profile

T0: Micros = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def at(day: float) -> Micros:
    return T0 + int(day * DAY)


@dataclass
class History:
    """Appends touchpoints for one customer; ``events`` is the list to feed."""

    customer_id: str = "c1"
    events: list[Touchpoint] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, event_type: str, day: float, **properties: Any) -> Touchpoint:
        event = Touchpoint(
            event_id=f"{self.customer_id}-{next(self._ids)}",
            customer_id=self.customer_id,
            type=event_type,
            occurred_at=at(day),
            channel=EVENT_TYPES[event_type][2],
            properties=properties,
        )
        self.events.append(event)
        return event

    def purchase(self, day: float, amount: float, order_id: str | None = None) -> Touchpoint:
        order = order_id or f"o{len(self.events)}"
        return self.add("purchase", day, order_id=order, amount=float(amount), currency="USD")

    def refund(self, day: float, amount: float) -> Touchpoint:
        return self.add("refund", day, order_id="r", amount=float(amount))

    def opened(self, day: float) -> Touchpoint:
        return self.add("email_opened", day, campaign_id="news")

    def clicked(self, day: float) -> Touchpoint:
        return self.add("email_clicked", day, campaign_id="news")

    def visit(self, day: float) -> Touchpoint:
        return self.add("web_visit", day, url="https://shop.example/")

    def unsubscribe(self, day: float) -> Touchpoint:
        return self.add("unsubscribed", day)

    def subscribe(self, day: float) -> Touchpoint:
        return self.add("subscribed", day)

    def case_closed(self, day: float, case_id: str) -> Touchpoint:
        return self.add("support_case_closed", day, case_id=case_id)

    def survey(self, day: float, score: int, survey: str = "nps") -> Touchpoint:
        return self.add("survey_response", day, survey=survey, score=score)


def fold(events: list[Touchpoint]) -> Profile | None:
    profile: Profile | None = None
    for event in events:
        profile = evolve(profile, event)
    return profile
