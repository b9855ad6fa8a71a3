"""Sample values for the load-time dry run of every expression.

CEL only finds a misspelt property, an int compared with a string, or an
unknown variable when it runs. Running each expression once at load against a
profile whose every field is set, and an event of each type the rule names with
every property set, turns those into a ``RuleError`` with the rule's line,
instead of a condition that silently never holds in production.
"""

from __future__ import annotations

from typing import Any, Final

from events.model import DAY, EVENT_TYPES, Touchpoint
from projections.profile import Profile

SAMPLE_AT: Final = 1_767_225_600_000_000 + 200 * DAY
"""An instant after every time in the sample profile."""

_PROPERTY_SAMPLES: Final[dict[str, Any]] = {
    "amount": 10.0,
    "currency": "USD",
    "items": [],
    "traits": {},
    "resolved": True,
    "score": 5,
    "survey": "nps",
}


def sample_profile() -> Profile:
    t = SAMPLE_AT - 10 * DAY
    return Profile(
        customer_id="sample",
        first_seen=t - 100 * DAY,
        last_seen=t,
        event_count=10,
        counts_by_type={"purchase": 2},
        counts_by_channel={"web": 2},
        purchase_total=30.0,
        refund_total=5.0,
        order_count=2,
        first_purchase_at=t - 50 * DAY,
        last_purchase_at=t - 5 * DAY,
        email_sent=4,
        email_opened=2,
        email_clicked=1,
        subscription_changed_at=t - 90 * DAY,
        nps_last=7,
        nps_last_at=t,
        nps_sum=7,
        nps_count=1,
        csat_last=4,
        csat_last_at=t,
        csat_sum=4,
        csat_count=1,
        survey_count=2,
        cases={"c1": [True, True]},
        engagement_raw=5.0,
        engagement_at=t,
        reactivated_at=t - 50 * DAY,
        recent=[("e1", "purchase", "web", t)],
        window_purchases=[(t - 5 * DAY, 20.0)],
        window_opens=[t - DAY],
        window_clicks=[t - DAY],
    )


def sample_event(event_type: str) -> Touchpoint:
    required, optional, channel = EVENT_TYPES[event_type]
    properties = {name: _PROPERTY_SAMPLES.get(name, "x") for name in (*required, *optional)}
    return Touchpoint(
        event_id="sample-event",
        customer_id="sample",
        type=event_type,
        occurred_at=SAMPLE_AT,
        channel=channel,
        source="sample",
        properties=properties,
        extra={},
    )
