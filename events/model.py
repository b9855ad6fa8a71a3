"""The typed touchpoint model shared by ingest, the codec and the fold.

Times are integer microseconds since the Unix epoch, UTC. The fold and the
rules compare and subtract times millions of times per second; plain ints keep
that cheap and make the core independent of ``datetime`` and time zones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

Micros = int
"""Microseconds since 1970-01-01T00:00:00Z."""

SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

CHANNELS: Final = ("email", "web", "app", "store", "chat", "phone", "survey", "support", "other")

# type -> (required properties, optional properties, default channel)
EVENT_TYPES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]] = {
    "identify": ((), ("email", "name", "traits"), "other"),
    "email_sent": (("campaign_id",), ("message_id",), "email"),
    "email_opened": (("campaign_id",), ("message_id",), "email"),
    "email_clicked": (("campaign_id",), ("message_id", "url"), "email"),
    "unsubscribed": ((), ("list",), "email"),
    "subscribed": ((), ("list",), "email"),
    "web_visit": (("url",), ("referrer",), "web"),
    "purchase": (("order_id", "amount"), ("currency", "items"), "web"),
    "refund": (("order_id", "amount"), (), "web"),
    "chat_started": (("conversation_id",), (), "chat"),
    "chat_ended": (("conversation_id",), ("resolved",), "chat"),
    "support_case_opened": (("case_id",), (), "support"),
    "support_case_closed": (("case_id",), ("resolution",), "support"),
    "survey_response": (("survey", "score"), ("comment",), "survey"),
    "custom": (("name",), (), "other"),
}
"""``custom`` is any event an upstream names itself (Segment's "Product
Viewed"): ``name`` is typed, every other property is kept in ``extra``."""

MAX_ID_LENGTH: Final = 128

PERSONAL_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "identify": ("email", "name", "traits"),
    "email_clicked": ("url",),
    "web_visit": ("url", "referrer"),
    "survey_response": ("comment",),
    "support_case_closed": ("resolution",),
}
"""Personal properties per type, sealed on the log with the person's key
(``events.sealing``); every type's unknown extra properties are personal too."""


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """One immutable customer touchpoint, as validated at ingest.

    ``properties`` holds the typed, known properties of the event's type with
    their normalised Python values (``amount`` a float, ``currency`` upper-case,
    ``resolved`` a bool...). ``extra`` keeps unknown properties as strings so
    nothing an upstream system sent is lost.
    """

    event_id: str
    customer_id: str
    type: str
    occurred_at: Micros
    channel: str
    source: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    anonymous_id: str | None = None
    """A device or cookie id. An event sent with only an anonymous id has it
    as its ``customer_id`` too (its partition key and profile), until
    identity resolution (DESIGN.md, "Identity") links it to a customer."""


TOUCHPOINT_FIELDS: Final = (
    "event_id",
    "customer_id",
    "type",
    "occurred_at",
    "channel",
    "source",
    "properties",
    "extra",
    "anonymous_id",
)
"""``Touchpoint``'s fields in order, as the fast constructors in
``events.codec.touchpoint`` and ``events.sealing`` were written for: each
checks the model still matches and otherwise falls back to the ordinary
constructor. A new field goes here and into both."""


@dataclass(frozen=True, slots=True)
class ClockRecord:
    """An advance of one partition's clock that no touchpoint caused
    (``events.clock`` says why they are on the log)."""

    partition: int
    at: Micros
    source: str = "wall"


@dataclass(frozen=True, slots=True)
class ModelFitted:
    """A fitted churn and lifetime-value model, on the touchpoints log
    (``events.control``): a processor and a replay adopt the parameters at
    the same log position. ``engage model fit`` writes one copy to every
    partition; ``partitions`` is how many there were, so a reader can tell
    which customers are on this one.

    ``params`` are ``projections.predictions.ModelParams`` by name (r, alpha,
    a, b, p, q, gamma) in ``time_unit``; this layer does not know the model.
    """

    version: int
    partition: int
    partitions: int
    as_of: Micros
    """The fit used the purchases that occurred at or before this instant."""
    params: dict[str, float]
    time_unit: str = "days"
    fitted_at: str = ""
    """The wall-clock time of the fit, ISO 8601 (bookkeeping only)."""


@dataclass(frozen=True, slots=True)
class SubjectErased:
    """A person's erasure, on the touchpoints log (``events.subject_erased``):
    the processor and every replay forget the person at this position, so a
    replay builds no profile for them."""

    erasure_id: str
    person: str
    at: Micros


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """One fired lifecycle trigger, as it goes to the outbox and the triggers stream.

    A typed value rather than a dict so the rules, the outbox relay and the
    codec agree on one shape checked by mypy. ``trigger_id`` is deterministic
    (rule, customer, cause) so a redelivered batch produces the same id and is
    recognised; ``fired_at`` is event time, never wall-clock time, so a replay
    fires identical triggers. ``caused_by`` is a tuple so the value stays as
    immutable as the log it lands on; ``details`` is free-form because each
    rule kind reports different facts.
    """

    trigger_id: str
    rule_id: str
    rule_version: int
    kind: str
    customer_id: str
    fired_at: Micros
    caused_by: tuple[str, ...]
    details: dict[str, Any]
    arm: str = "treatment"
    """``treatment`` (delivered) or ``control`` (recorded, never delivered):
    the rule's holdout and a stable hash of rule and person decide (``rules.arms``)."""


@dataclass(frozen=True, slots=True)
class TriggerConverted:
    """A trigger whose goal was reached: the first goal event of the person in
    the goal's window after the trigger fired (``rules.goals``). Decided by the
    pure batch step, so a replay writes the same conversions."""

    trigger_id: str
    rule_id: str
    arm: str
    customer_id: str
    event_id: str
    """The converting event."""
    converted_at: Micros
    fired_at: Micros
    value: float | None
    """The converting event's amount (a purchase's revenue); None without one."""

    @property
    def time_to_convert(self) -> Micros:
        return self.converted_at - self.fired_at


CUSTOM_NAME_KEPT_AS: Final = "_name"
"""Where a foreign event's own ``name`` property is kept when it becomes a
``custom`` touchpoint, whose ``properties.name`` is the event's name."""


def custom_properties(name: str, props: dict[str, Any]) -> dict[str, Any]:
    """The properties of a ``custom`` touchpoint named ``name`` that keeps
    every property of a foreign event (Segment track, CloudEvent)."""
    out = dict(props)
    if "name" in out:
        out[CUSTOM_NAME_KEPT_AS] = out.pop("name")
    out["name"] = name
    return out
