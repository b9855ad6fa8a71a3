"""The fold: ``evolve(state, event) -> state``, one handler per touchpoint type.

Pure: no I/O, no clock. Every time-dependent field is folded by *event time*
(min/max, sorted inserts, decayed sums re-based to the latest instant) so a
customer's events may arrive out of order and still give the same profile.

``evolve`` returns a new ``Profile`` and leaves its argument untouched. The
batch path ``fold`` copies once per customer and applies the same handlers in
place, because copying per event would dominate the hot path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from typing import Final

from events.model import DAY, Micros, Touchpoint
from projections.profile import RECENT_TOUCHPOINTS, Profile

ENGAGEMENT_HALF_LIFE: Final = 30 * DAY
DECAY: Final = math.log(2) / ENGAGEMENT_HALF_LIFE
ENGAGEMENT_WEIGHTS: Final = {
    "purchase": 10.0,
    "email_clicked": 3.0,
    "chat_started": 2.0,
    "survey_response": 2.0,
    "web_visit": 1.0,
    "email_opened": 1.0,
    "identify": 1.0,
    "subscribed": 1.0,
    "support_case_opened": 1.0,
}
WINDOW_PURCHASES: Final = 90 * DAY
WINDOW_EMAIL: Final = 60 * DAY
REACTIVATION_GAP: Final = 30 * DAY
OUTBOUND: Final = frozenset({"email_sent"})
"""Touchpoints we send, not ones the customer makes: they are counted and listed,
but do not make the customer "seen" (first_seen/last_seen), or every subscribed
customer would look active forever and inactivity would never be noticed."""

Handler = Callable[[Profile, Touchpoint], None]


def _email_sent(p: Profile, e: Touchpoint) -> None:
    p.email_sent += 1


def _email_opened(p: Profile, e: Touchpoint) -> None:
    p.email_opened += 1
    _window_add(p.window_opens, e.occurred_at, WINDOW_EMAIL)


def _email_clicked(p: Profile, e: Touchpoint) -> None:
    p.email_clicked += 1
    _window_add(p.window_clicks, e.occurred_at, WINDOW_EMAIL)


def _subscription(value: bool) -> Handler:
    def handler(p: Profile, e: Touchpoint) -> None:
        # by event time: only a later (or equal) change overrides the current one
        if p.subscription_changed_at is None or e.occurred_at >= p.subscription_changed_at:
            p.subscribed = value
            p.subscription_changed_at = e.occurred_at

    return handler


def _purchase(p: Profile, e: Touchpoint) -> None:
    t = e.occurred_at
    if p.order_count > 0 and p.last_seen is not None and t - p.last_seen >= REACTIVATION_GAP:
        p.reactivated_at = t
    amount: float = e.properties["amount"]
    p.purchase_total += amount
    p.order_count += 1
    _purchase_day(p, t, amount)
    if p.first_purchase_at is None or t < p.first_purchase_at:
        p.first_purchase_at = t
    if p.last_purchase_at is None or t > p.last_purchase_at:
        p.last_purchase_at = t
    bisect.insort(p.window_purchases, (t, amount))
    horizon = p.window_purchases[-1][0] - WINDOW_PURCHASES
    if p.window_purchases[0][0] < horizon:
        p.window_purchases[:] = [w for w in p.window_purchases if w[0] >= horizon]


def _purchase_day(p: Profile, t: Micros, amount: float) -> None:
    """The model's statistics (``projections.predictions``): the distinct
    purchase days as a sorted set, so a late purchase on a day already counted
    counts once, and the first day's total, kept by event time. Runs before
    ``first_purchase_at`` moves."""
    day = t // DAY
    first = p.first_purchase_at
    first_day = None if first is None else first // DAY
    if first_day is None or day < first_day:
        p.first_day_total = amount  # an earlier first day: the old one becomes a repeat
    elif day == first_day:
        p.first_day_total += amount
    days = p.purchase_days
    if days is None:
        return
    if not days or day > days[-1]:
        days.append(day)
        return
    at = bisect.bisect_left(days, day)
    if days[at] != day:
        days.insert(at, day)


def _refund(p: Profile, e: Touchpoint) -> None:
    p.refund_total += e.properties["amount"]


def _identify(p: Profile, e: Touchpoint) -> None:
    # by event time, like subscription: a late, older identify must not win
    for key in ("email", "name"):
        value = e.properties.get(key)
        if value is not None and e.occurred_at >= p.identity_at.get(key, e.occurred_at):
            p.identity[key] = value
            p.identity_at[key] = e.occurred_at


def _case_opened(p: Profile, e: Touchpoint) -> None:
    p.cases.setdefault(e.properties["case_id"], [False, False])[0] = True


def _case_closed(p: Profile, e: Touchpoint) -> None:
    p.cases.setdefault(e.properties["case_id"], [False, False])[1] = True


def _survey(p: Profile, e: Touchpoint) -> None:
    score: int = e.properties["score"]
    t = e.occurred_at
    p.survey_count += 1
    if e.properties["survey"] == "nps":
        p.nps_sum += score
        p.nps_count += 1
        if p.nps_last_at is None or t >= p.nps_last_at:
            p.nps_last, p.nps_last_at = score, t
    else:
        p.csat_sum += score
        p.csat_count += 1
        if p.csat_last_at is None or t >= p.csat_last_at:
            p.csat_last, p.csat_last_at = score, t


def _custom(p: Profile, e: Touchpoint) -> None:
    name = e.properties["name"]
    p.custom_counts[name] = p.custom_counts.get(name, 0) + 1


def _nothing(p: Profile, e: Touchpoint) -> None:
    """Counted, timed and listed by the common part of the fold; nothing more."""


HANDLERS: Final[dict[str, Handler]] = {
    "identify": _identify,
    "email_sent": _email_sent,
    "email_opened": _email_opened,
    "email_clicked": _email_clicked,
    "unsubscribed": _subscription(False),
    "subscribed": _subscription(True),
    "web_visit": _nothing,
    "purchase": _purchase,
    "refund": _refund,
    "chat_started": _nothing,
    "chat_ended": _nothing,
    "support_case_opened": _case_opened,
    "support_case_closed": _case_closed,
    "survey_response": _survey,
    "custom": _custom,
}


def _window_add(window: list[Micros], t: Micros, span: Micros) -> None:
    bisect.insort(window, t)
    horizon = window[-1] - span
    if window[0] < horizon:
        del window[: bisect.bisect_left(window, horizon)]


def apply(p: Profile, e: Touchpoint) -> None:
    """Fold one event into ``p`` in place. The type-specific handler runs first
    so it can look at the state as it was before this event (reactivation)."""
    HANDLERS[e.type](p, e)
    t = e.occurred_at
    p.event_count += 1
    p.counts_by_type[e.type] = p.counts_by_type.get(e.type, 0) + 1
    p.counts_by_channel[e.channel] = p.counts_by_channel.get(e.channel, 0) + 1
    if e.type not in OUTBOUND:
        if p.first_seen is None or t < p.first_seen:
            p.first_seen = t
        if p.last_seen is None or t > p.last_seen:
            p.last_seen = t
    weight = ENGAGEMENT_WEIGHTS.get(e.type, 0.0)
    if weight:
        at = p.engagement_at
        if at is None:
            p.engagement_raw, p.engagement_at = weight, t
        elif t <= at:
            p.engagement_raw += weight * math.exp(-DECAY * (at - t))
        else:
            p.engagement_raw = p.engagement_raw * math.exp(-DECAY * (t - at)) + weight
            p.engagement_at = t
    recent = p.recent
    entry = (e.event_id, e.type, e.channel, t)
    if not recent or t >= recent[-1][3]:
        recent.append(entry)
    else:
        bisect.insort(recent, entry, key=lambda r: r[3])
    if len(recent) > RECENT_TOUCHPOINTS:
        del recent[0]


def evolve(state: Profile | None, event: Touchpoint) -> Profile:
    """Fold one event into a profile and return the new profile."""
    new = Profile(event.customer_id) if state is None else state.copy()
    apply(new, event)
    return new


def fold(state: Profile | None, events: Iterable[Touchpoint], customer_id: str) -> Profile:
    """Fold many events of one customer: the same handlers, one copy."""
    new = Profile(customer_id) if state is None else state.copy()
    for event in events:
        apply(new, event)
    return new
