"""The values a rule reads: customer-360 fields of a profile judged at an instant.

A rule sees ``before`` and ``after`` as customer-360-like maps, but building the
whole 360 (and converting it into CEL) per event would cost far more than the
rule itself. So every field is a small getter ``(profile, at) -> value`` and the
evaluator asks only for the fields the rule's expressions name.

``at`` is the event's own ``occurred_at`` (or a timer's due instant), never the
processor's clock: windows and the lifecycle stage are judged at the moment of
the occurrence, so a replay cut into different batches fires the same triggers.
Times stay integer microseconds, as everywhere in the core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from events.model import DAY, Micros, Touchpoint
from projections.customer360 import engagement_score, lifecycle_stage
from projections.evolve import WINDOW_EMAIL, WINDOW_PURCHASES
from projections.profile import Profile

Getter = Callable[[Profile, Micros], Any]


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


def _average(total: float, count: int) -> float | None:
    return None if count == 0 else round(total / count, 2)


FIELDS: Final[dict[str, Getter]] = {
    "customer_id": lambda p, at: p.customer_id,
    "first_seen": lambda p, at: p.first_seen,
    "last_seen": lambda p, at: p.last_seen,
    "event_count": lambda p, at: p.event_count,
    "counts_by_type": lambda p, at: dict(p.counts_by_type),
    "counts_by_channel": lambda p, at: dict(p.counts_by_channel),
    "custom_counts": lambda p, at: dict(p.custom_counts),
    "lifetime_spend": lambda p, at: p.lifetime_spend,
    "refund_total": lambda p, at: round(p.refund_total, 2),
    "order_count": lambda p, at: p.order_count,
    "repeat_purchases": lambda p, at: p.repeat_purchases,
    "average_order_value": lambda p, at: _average(p.purchase_total, p.order_count),
    "first_purchase_at": lambda p, at: p.first_purchase_at,
    "last_purchase_at": lambda p, at: p.last_purchase_at,
    "email_sent": lambda p, at: p.email_sent,
    "email_opened": lambda p, at: p.email_opened,
    "email_clicked": lambda p, at: p.email_clicked,
    "open_rate": lambda p, at: _ratio(p.email_opened, p.email_sent),
    "click_rate": lambda p, at: _ratio(p.email_clicked, p.email_sent),
    "subscribed": lambda p, at: p.subscribed,
    "nps_last": lambda p, at: p.nps_last,
    "nps_average": lambda p, at: _average(p.nps_sum, p.nps_count),
    "csat_last": lambda p, at: p.csat_last,
    "csat_average": lambda p, at: _average(p.csat_sum, p.csat_count),
    "survey_count": lambda p, at: p.survey_count,
    "support_cases": lambda p, at: p.support_cases,
    "open_support_cases": lambda p, at: p.open_support_cases,
    "engagement_score": lambda p, at: engagement_score(p, at),
    "lifecycle_stage": lambda p, at: lifecycle_stage(p, at),
    "days_since_last_seen": lambda p, at: (
        None if p.last_seen is None else (at - p.last_seen) // DAY
    ),
    "days_since_last_purchase": lambda p, at: (
        None if p.last_purchase_at is None else (at - p.last_purchase_at) // DAY
    ),
}

TIME_FIELDS: Final = frozenset({"first_seen", "last_seen", "first_purchase_at", "last_purchase_at"})
"""The fields a timer may be anchored on (``due: last_seen + 30d``)."""

# windowed helpers: name -> (longest window the profile keeps, getter factory)
_WINDOWED: Final = re.compile(r"^(purchases|orders|opens|clicks)_(\d+)d$")
_WINDOW_LIMIT: Final = {
    "purchases": WINDOW_PURCHASES,
    "orders": WINDOW_PURCHASES,
    "opens": WINDOW_EMAIL,
    "clicks": WINDOW_EMAIL,
}


def _purchases(span: Micros) -> Getter:
    def getter(p: Profile, at: Micros) -> float:
        start = at - span
        total = 0.0
        for t, amount in reversed(p.window_purchases):
            if t <= start:
                break
            if t <= at:
                total += amount
        return round(total, 2)

    return getter


def _orders(span: Micros) -> Getter:
    def getter(p: Profile, at: Micros) -> int:
        start = at - span
        return sum(1 for t, _ in p.window_purchases if start < t <= at)

    return getter


def _instants(attribute: str, span: Micros) -> Getter:
    def getter(p: Profile, at: Micros) -> int:
        start = at - span
        window: list[Micros] = getattr(p, attribute)
        count = 0
        for t in reversed(window):
            if t <= start:
                break
            if t <= at:
                count += 1
        return count

    return getter


def field_getter(name: str) -> Getter:
    """The getter for a field name, including the windowed ``purchases_30d``
    family (``purchases``/``orders``/``opens``/``clicks`` + ``_<N>d``: the sum
    or count in the trailing N days ending at the judged instant, inclusive).

    Raises ``ValueError`` naming the known fields, or the window the profile keeps.
    """
    getter = FIELDS.get(name)
    if getter is not None:
        return getter
    match = _WINDOWED.match(name)
    if match is None:
        known = ", ".join(sorted(FIELDS))
        raise ValueError(
            f"unknown field {name!r}; known: {known}, and purchases_<N>d, orders_<N>d, "
            "opens_<N>d, clicks_<N>d"
        )
    kind, days = match.group(1), int(match.group(2))
    span = days * DAY
    limit = _WINDOW_LIMIT[kind]
    if days == 0 or span > limit:
        raise ValueError(
            f"{name!r}: the profile keeps {kind} for {limit // DAY} days, so N must be 1 to "
            f"{limit // DAY}"
        )
    if kind == "purchases":
        return _purchases(span)
    if kind == "orders":
        return _orders(span)
    return _instants("window_opens" if kind == "opens" else "window_clicks", span)


EVENT_FIELDS: Final = frozenset(
    {"event_id", "customer_id", "type", "channel", "source", "occurred_at", "properties", "extra"}
)


def event_view(event: Touchpoint, names: Iterable[str]) -> dict[str, Any]:
    """The ``event`` map with only the attributes a rule reads."""
    return {name: getattr(event, name) for name in names}


def profile_view(
    profile: Profile, at: Micros, getters: Iterable[tuple[str, Getter]]
) -> dict[str, Any]:
    return {name: getter(profile, at) for name, getter in getters}
