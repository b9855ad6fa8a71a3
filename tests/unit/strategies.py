"""Hypothesis strategies for touchpoints shaped exactly as ingest produces them.

The fold, the codec and the rules only ever see ``Touchpoint`` values that came
out of ``events.ingest.validate``, so a strategy that produced other shapes
(an int amount, a lower-case currency, a trait that is not a string) would test
inputs that cannot happen and miss the ones that can. ``test_ingest`` checks
these strategies against the validator: every generated touchpoint, written
back out as ingest JSON by ``to_ingest_json``, validates to itself.

The property tables are written out here from DESIGN.md rather than derived
from ``events.model.EVENT_TYPES``, so the model and the contract check each
other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from events.model import DAY, Micros, Touchpoint
from events.timefmt import format_iso_exact

CHANNELS = ("email", "web", "app", "store", "chat", "phone", "survey", "support", "other")

# type -> (required properties, optional properties), from DESIGN.md "JSON ingest format"
CONTRACT_PROPERTIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "identify": ((), ("email", "name", "traits")),
    "email_sent": (("campaign_id",), ("message_id",)),
    "email_opened": (("campaign_id",), ("message_id",)),
    "email_clicked": (("campaign_id",), ("message_id", "url")),
    "unsubscribed": ((), ("list",)),
    "subscribed": ((), ("list",)),
    "web_visit": (("url",), ("referrer",)),
    "purchase": (("order_id", "amount"), ("currency", "items")),
    "refund": (("order_id", "amount"), ()),
    "chat_started": (("conversation_id",), ()),
    "chat_ended": (("conversation_id",), ("resolved",)),
    "support_case_opened": (("case_id",), ()),
    "support_case_closed": (("case_id",), ("resolution",)),
    "survey_response": (("survey", "score"), ("comment",)),
    "custom": (("name",), ()),
}
EVENT_TYPES = tuple(CONTRACT_PROPERTIES)

# the channel ingest fills in when the event names none
DEFAULT_CHANNELS: dict[str, str] = {
    "identify": "other",
    "email_sent": "email",
    "email_opened": "email",
    "email_clicked": "email",
    "unsubscribed": "email",
    "subscribed": "email",
    "web_visit": "web",
    "purchase": "web",
    "refund": "web",
    "chat_started": "chat",
    "chat_ended": "chat",
    "support_case_opened": "support",
    "support_case_closed": "support",
    "survey_response": "survey",
    "custom": "other",
}

T0: Micros = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
"""The start of the default time range."""
SPAN: Micros = 400 * DAY
"""The default time range: long enough for the 30/60/90-day windows and gaps."""

# JSON text: orjson (and therefore ingest) cannot carry lone surrogates
_chars = st.characters(codec="utf-8")
text = st.text(alphabet=_chars, max_size=12)
nonempty_text = st.text(alphabet=_chars, min_size=1, max_size=12)
identifiers = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=128
)
"""Any id ingest accepts: 1-128 characters, no NUL (PostgreSQL text cannot hold it)."""

customer_identifiers = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters="/"),
    min_size=1,
    max_size=128,
).filter(lambda s: s not in (".", ".."))
"""Any customer_id ingest accepts: also addressable in a URL path and printable
(no '/', no control characters, not '.' or '..'; ``events.limits``)."""

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
"""Any value a JSON document can hold (as orjson decodes it)."""

amounts = st.one_of(
    st.integers(min_value=0, max_value=10_000_000).map(lambda cents: cents / 100),
    st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False),
)
"""Money as ingest normalises it: always a float, never negative."""

currencies = st.sampled_from(("USD", "EUR", "GBP", "JPY")) | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3
)
"""Currency as ingest normalises it: three upper-case ASCII letters."""


def _survey() -> st.SearchStrategy[dict[str, Any]]:
    nps = st.fixed_dictionaries(
        {"survey": st.just("nps"), "score": st.integers(0, 10)}, optional={"comment": text}
    )
    csat = st.fixed_dictionaries(
        {"survey": st.just("csat"), "score": st.integers(1, 5)}, optional={"comment": text}
    )
    return nps | csat


def _campaign(*optional: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"campaign_id": nonempty_text}, optional={name: text for name in optional}
    )


PROPERTIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "identify": st.fixed_dictionaries(
        {},
        optional={
            "email": text,
            "name": text,
            "traits": st.dictionaries(text, text, max_size=3),
        },
    ),
    "email_sent": _campaign("message_id"),
    "email_opened": _campaign("message_id"),
    "email_clicked": _campaign("message_id", "url"),
    "unsubscribed": st.fixed_dictionaries({}, optional={"list": text}),
    "subscribed": st.fixed_dictionaries({}, optional={"list": text}),
    "web_visit": st.fixed_dictionaries({"url": text}, optional={"referrer": text}),
    "purchase": st.fixed_dictionaries(
        {"order_id": text, "amount": amounts, "currency": currencies},
        optional={"items": st.lists(json_values, max_size=3)},
    ),
    "refund": st.fixed_dictionaries({"order_id": text, "amount": amounts}),
    "chat_started": st.fixed_dictionaries({"conversation_id": text}),
    "chat_ended": st.fixed_dictionaries(
        {"conversation_id": text}, optional={"resolved": st.booleans()}
    ),
    "support_case_opened": st.fixed_dictionaries({"case_id": st.sampled_from("abcde")}),
    "support_case_closed": st.fixed_dictionaries(
        {"case_id": st.sampled_from("abcde")}, optional={"resolution": text}
    ),
    "survey_response": _survey(),
    "custom": st.fixed_dictionaries(
        {"name": st.sampled_from(("Product Viewed", "Cart Abandoned")) | nonempty_text}
    ),
}
"""Per type, the normalised ``properties`` ingest produces. Case ids come from a
small pool so opens and closes of the same case meet."""


def _extra(type_: str) -> st.SearchStrategy[dict[str, str]]:
    required, optional = CONTRACT_PROPERTIES[type_]
    known = set(required) | set(optional)
    return st.dictionaries(text.filter(lambda k: k not in known), text, max_size=2)


def _as_strategy(
    value: Sequence[str] | st.SearchStrategy[str] | None, default: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    return st.sampled_from(tuple(value))


def times(start: Micros = T0, span: Micros = SPAN) -> st.SearchStrategy[Micros]:
    """Instants in ``[start, start + span]``."""
    return st.integers(min_value=start, max_value=start + span)


@st.composite
def _touchpoint(
    draw: st.DrawFn,
    customer_ids: st.SearchStrategy[str],
    event_ids: st.SearchStrategy[str],
    types: st.SearchStrategy[str],
    occurred_at: st.SearchStrategy[Micros],
) -> Touchpoint:
    type_ = draw(types)
    default = DEFAULT_CHANNELS[type_]
    return Touchpoint(
        event_id=draw(event_ids),
        customer_id=draw(customer_ids),
        type=type_,
        occurred_at=draw(occurred_at),
        channel=draw(st.just(default) | st.sampled_from(CHANNELS)),
        source=draw(st.none() | text),
        properties=draw(PROPERTIES[type_]),
        extra=draw(_extra(type_)),
        anonymous_id=draw(st.none() | customer_identifiers),
    )


def touchpoints(
    customer_ids: Sequence[str] | st.SearchStrategy[str] | None = None,
    *,
    event_ids: st.SearchStrategy[str] | None = None,
    types: Sequence[str] | st.SearchStrategy[str] | None = None,
    occurred_at: st.SearchStrategy[Micros] | None = None,
) -> st.SearchStrategy[Touchpoint]:
    """Valid touchpoints of every type (or of ``types``), as ingest produces them.

    ``customer_ids`` is a strategy or a sequence to sample from; by default any
    id ingest accepts. ``occurred_at`` defaults to ``times()``.
    """
    return _touchpoint(
        _as_strategy(customer_ids, customer_identifiers),
        event_ids if event_ids is not None else identifiers,
        _as_strategy(types, st.sampled_from(EVENT_TYPES)),
        occurred_at if occurred_at is not None else times(),
    )


def histories(
    customer_id: str = "cust-1",
    *,
    min_size: int = 0,
    max_size: int = 40,
    distinct_times: bool = False,
    types: Sequence[str] | st.SearchStrategy[str] | None = None,
    occurred_at: st.SearchStrategy[Micros] | None = None,
) -> st.SearchStrategy[list[Touchpoint]]:
    """One customer's events, with unique event ids (as the log dedupes them)
    and, when asked, pairwise distinct ``occurred_at`` (so "the latest" is
    unambiguous)."""
    events = touchpoints(
        [customer_id],
        event_ids=st.uuids().map(str),
        types=types,
        occurred_at=occurred_at,
    )
    unique: Any = (
        (lambda e: e.event_id, lambda e: e.occurred_at)
        if distinct_times
        else (lambda e: e.event_id)
    )
    return st.lists(events, min_size=min_size, max_size=max_size, unique_by=unique)


def to_ingest_json(tp: Touchpoint) -> dict[str, Any]:
    """The ingest JSON object an upstream system would send for ``tp``."""
    obj: dict[str, Any] = {
        "event_id": tp.event_id,
        "customer_id": tp.customer_id,
        "type": tp.type,
        "occurred_at": format_iso_exact(tp.occurred_at),
        "channel": tp.channel,
        "properties": {**tp.extra, **tp.properties},
    }
    if tp.source is not None:
        obj["source"] = tp.source
    if tp.anonymous_id is not None:
        obj["anonymous_id"] = tp.anonymous_id
    return obj
