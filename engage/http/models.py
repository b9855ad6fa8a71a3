"""Response shapes for the OpenAPI document.

The handlers build plain dicts (the contract functions shared with the CLI)
and serialise them with orjson; these models only document the shapes, and
the schemathesis suite checks that the two agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Error(BaseModel):
    error: str = Field(description="What was wrong, in words a developer can act on.")


class EventResult(BaseModel):
    index: int = Field(description="0-based position of the event in the request.")
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    field: str | None = None
    reason: str | None = None


class IngestResponse(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class SegmentResponse(BaseModel):
    """Segment's answer (its SDKs read ``success``), with Engage's counts."""

    success: bool
    accepted: int
    duplicate: int
    rejected: int


class Touchpoint(BaseModel):
    event_id: str
    type: str
    channel: str
    occurred_at: str


class Customer360(BaseModel):
    model_config = ConfigDict(extra="allow")

    customer_id: str
    first_seen: str | None
    last_seen: str | None
    event_count: int
    counts_by_type: dict[str, int]
    counts_by_channel: dict[str, int]
    custom_counts: dict[str, int] = Field(
        default_factory=dict,
        description="Custom touchpoints (type `custom`, e.g. Segment tracks) by their name.",
    )
    lifetime_spend: float
    order_count: int
    average_order_value: float | None
    last_purchase_at: str | None
    email_sent: int
    email_opened: int
    email_clicked: int
    open_rate: float | None
    click_rate: float | None
    subscribed: bool
    nps_last: int | None
    nps_average: float | None
    csat_last: int | None
    csat_average: float | None
    survey_count: int
    support_cases: int
    open_support_cases: int
    engagement_score: float
    lifecycle_stage: Literal["prospect", "new", "active", "at_risk", "churned", "reactivated"]
    recent_touchpoints: list[Touchpoint]
    p_alive: float | None = Field(
        None,
        description="BG/NBD probability that the customer is still active, at the clock; "
        "null before `engage model fit` or without a purchase.",
    )
    expected_purchases_90d: float | None = Field(
        None, description="Expected repeat purchases in the next 90 days (BG/NBD)."
    )
    predicted_clv_365d: float | None = Field(
        None,
        description="Expected spend in the next 365 days, undiscounted (BG/NBD with Gamma-Gamma).",
    )
    churn_risk: Literal["low", "medium", "high"] | None = Field(
        None, description="high: p_alive below 0.3; medium: below 0.7; else low."
    )


class Trigger(BaseModel):
    trigger_id: str
    rule_id: str
    rule_version: int
    kind: str
    customer_id: str
    fired_at: str
    caused_by: list[str]
    details: dict[str, Any]


class Timeline(BaseModel):
    customer_id: str
    items: list[dict[str, Any]] = Field(
        description="Touchpoints (kind 'touchpoint') and triggers (kind 'trigger') in time order."
    )
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= for the next page; null on the last page."
    )


class TriggerPage(BaseModel):
    items: list[Trigger]
    next_cursor: str = Field(description="Pass as ?cursor= to continue from here.")
    has_more: bool = Field(description="True when more triggers were already waiting.")


class CustomerHit(BaseModel):
    customer_id: str
    last_seen: str | None


class CustomerSearch(BaseModel):
    items: list[CustomerHit]


class DeadLetter(BaseModel):
    id: int
    received_at: str
    stage: str
    source: str | None
    line: int | None
    event_id: str | None
    field: str
    reason: str
    raw: str = Field(description="The rejected input, at most its first 16 KiB.")
    raw_bytes: int | None = Field(None, description="The whole input's size in bytes.")
    raw_sha256: str | None = Field(None, description="The whole input's SHA-256.")
    truncated: bool = Field(False, description="True when raw holds only the first part.")


class DeadLetters(BaseModel):
    total: int
    items: list[DeadLetter]
    next_before: int | None = Field(
        None, description="Pass as ?before= for older dead letters; null when none are left."
    )


class RuleSeries(BaseModel):
    rule_id: str
    points: list[list[int | str]] = Field(description="[bucket start (ISO UTC), triggers] pairs.")


class TriggerStats(BaseModel):
    bucket: str
    totals: dict[str, int]
    series: list[RuleSeries]


class Status(BaseModel):
    log_events: int
    triggers: int
    profiles: int
    dead_letters: int
    lag: int
    clock: str | None


class Health(BaseModel):
    status: Literal["ok"]


class PyramidLevel(BaseModel):
    name: str
    values: list[list[str | float | int | None]]


class Kpis(BaseModel):
    model_config = ConfigDict(extra="allow")

    by: str
    as_of: str | None
    periods: list[dict[str, Any]]
    total: dict[str, Any]
    pyramid: list[PyramidLevel]


def event_schema() -> dict[str, Any]:
    """The JSON ingest format as JSON Schema, for the OpenAPI document only; the
    validator is ``events.ingest``."""
    from events.model import CHANNELS, EVENT_TYPES

    ident = {"type": "string", "minLength": 1, "maxLength": 128}
    return {
        "type": "object",
        "required": ["event_id", "type", "occurred_at"],
        "anyOf": [{"required": ["customer_id"]}, {"required": ["anonymous_id"]}],
        "properties": {
            "event_id": ident,
            "customer_id": ident,
            "anonymous_id": ident,
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "occurred_at": {"type": "string", "format": "date-time"},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "source": {"type": "string"},
            "properties": {"type": "object"},
        },
    }
