"""The customer-360 state: the accumulators the fold keeps per customer.

Only accumulators live here. Anything that depends on "now" (lifecycle stage,
time-decayed engagement score) is derived at read time by ``projections.customer360``
with the processor's clock passed in, so the stored state never goes stale and
the fold never needs a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from events.model import Micros

RECENT_TOUCHPOINTS = 20

RecentTouchpoint = tuple[str, str, str, Micros]
"""(event_id, type, channel, occurred_at)."""


@dataclass(slots=True)
class Profile:
    customer_id: str
    first_seen: Micros | None = None
    last_seen: Micros | None = None
    event_count: int = 0
    counts_by_type: dict[str, int] = field(default_factory=dict)
    counts_by_channel: dict[str, int] = field(default_factory=dict)
    purchase_total: float = 0.0
    refund_total: float = 0.0
    order_count: int = 0
    first_purchase_at: Micros | None = None
    last_purchase_at: Micros | None = None
    email_sent: int = 0
    email_opened: int = 0
    email_clicked: int = 0
    subscribed: bool = True
    subscription_changed_at: Micros | None = None
    nps_last: int | None = None
    nps_last_at: Micros | None = None
    nps_sum: int = 0
    nps_count: int = 0
    csat_last: int | None = None
    csat_last_at: Micros | None = None
    csat_sum: int = 0
    csat_count: int = 0
    survey_count: int = 0
    # case_id -> [opened, closed]; an out-of-order close before its open still counts right
    cases: dict[str, list[bool]] = field(default_factory=dict)
    engagement_raw: float = 0.0
    engagement_at: Micros | None = None
    reactivated_at: Micros | None = None
    # last RECENT_TOUCHPOINTS touchpoints, ascending by occurred_at
    recent: list[RecentTouchpoint] = field(default_factory=list)
    # event-time windows the rules read: (occurred_at, amount) and open/click instants
    window_purchases: list[tuple[Micros, float]] = field(default_factory=list)
    window_opens: list[Micros] = field(default_factory=list)
    window_clicks: list[Micros] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)
    identity_at: dict[str, Micros] = field(default_factory=dict)
    # per-rule memory owned by the rules engine (last fired, once-keys, cap window).
    # Values are JSON-ready and treated as immutable: replace them, never mutate,
    # so ``copy`` can stay shallow here.
    rule_state: dict[str, Any] = field(default_factory=dict)
    # what the churn and lifetime-value model needs (``projections.predictions``):
    # the distinct UTC days (``instant // DAY``) with a purchase, ascending, and
    # the order values of the first of them. None: unknown, a profile stored
    # before they were kept (``from_state``); ``engage replay`` fills them in.
    purchase_days: list[int] | None = field(default_factory=list)
    first_day_total: float = 0.0
    # goals awaiting a conversion (``rules.goals``): [trigger_id, rule_id, arm,
    # fired_at, window end]; entries are replaced, never mutated
    open_goals: list[list[Any]] = field(default_factory=list)
    # custom touchpoints by their name ("Product Viewed": 3)
    custom_counts: dict[str, int] = field(default_factory=dict)
    # identity (``consumers.identity_changes``): the log keys other than its
    # own whose events are folded in (persons it absorbed), so a later merge
    # folds only what is new
    folded_keys: list[str] = field(default_factory=list)

    def copy(self) -> Profile:
        """A deep-enough copy: every mutable container is new, so the fold can
        mutate the copy while the caller keeps the original as "before"."""
        return Profile(
            self.customer_id,
            self.first_seen,
            self.last_seen,
            self.event_count,
            dict(self.counts_by_type),
            dict(self.counts_by_channel),
            self.purchase_total,
            self.refund_total,
            self.order_count,
            self.first_purchase_at,
            self.last_purchase_at,
            self.email_sent,
            self.email_opened,
            self.email_clicked,
            self.subscribed,
            self.subscription_changed_at,
            self.nps_last,
            self.nps_last_at,
            self.nps_sum,
            self.nps_count,
            self.csat_last,
            self.csat_last_at,
            self.csat_sum,
            self.csat_count,
            self.survey_count,
            {k: list(v) for k, v in self.cases.items()},
            self.engagement_raw,
            self.engagement_at,
            self.reactivated_at,
            list(self.recent),
            list(self.window_purchases),
            list(self.window_opens),
            list(self.window_clicks),
            dict(self.identity),
            dict(self.identity_at),
            dict(self.rule_state),
            None if self.purchase_days is None else list(self.purchase_days),
            self.first_day_total,
            list(self.open_goals),
            dict(self.custom_counts),
            list(self.folded_keys),
        )

    @property
    def lifetime_spend(self) -> float:
        return round(self.purchase_total - self.refund_total, 2)

    @property
    def repeat_purchases(self) -> int | None:
        """BG/NBD's x: distinct purchase days after the first (None: unknown)."""
        days = self.purchase_days
        return None if days is None else max(0, len(days) - 1)

    @property
    def mean_repeat_value(self) -> float:
        """The mean value of the repeat transactions (each a day's total); 0 without any."""
        x = self.repeat_purchases
        return (self.purchase_total - self.first_day_total) / x if x else 0.0

    @property
    def open_support_cases(self) -> int:
        return sum(1 for opened, closed in self.cases.values() if opened and not closed)

    @property
    def support_cases(self) -> int:
        return sum(1 for opened, _ in self.cases.values() if opened)

    def to_state(self) -> dict[str, Any]:
        """The stored form (JSON-ready); the inverse of ``from_state``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Profile:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        profile = cls(**values)
        # JSON has no tuples: restore the tuple-typed entries
        profile.recent = [tuple(r) for r in profile.recent]  # type: ignore[misc]
        profile.window_purchases = [(int(t), float(a)) for t, a in profile.window_purchases]
        if "purchase_days" not in state and profile.order_count:
            # stored before the purchase days were kept: they cannot be rebuilt
            # from the other fields, so the predictions say "unknown" (null)
            # rather than guess; a replay folds them from the log
            profile.purchase_days = None
        return profile
