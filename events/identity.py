"""Identifiers of a person, the evidence an event gives, and the identity
records the engine writes on the log (DESIGN.md, "Identity").

This module only says *what* an event claims: which identifiers it names and
whether they may link at all. Deciding which identifiers form one person is a
projection of the log (``projections.identity``). Pure: no I/O, no clock.

Kinds are separate namespaces: ``customer_id:42`` and ``anonymous_id:42`` are
different identifiers. An event sent with only an ``anonymous_id`` carries that
value as its ``customer_id`` too (``events.model.Touchpoint``), so a
``customer_id`` equal to the event's ``anonymous_id`` is read as "no customer
id": that is the only way the envelope can say it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

from events.model import Micros, Touchpoint

CUSTOMER_ID: Final = "customer_id"
EMAIL: Final = "email"
ANONYMOUS_ID: Final = "anonymous_id"
KINDS: Final = (CUSTOMER_ID, EMAIL, ANONYMOUS_ID)
"""In priority order: when an event's identifiers cannot all join, the earlier
kinds win (a customer id is the strongest claim, a cookie the weakest)."""
LIMITED: Final = frozenset({CUSTOMER_ID, EMAIL})
"""The kinds a person may hold at most one of (the merge limits)."""

BLOCKED: Final = frozenset({"", "0", "-1", "null", "none", "undefined", "anonymous"})
"""Placeholder values upstream systems send when they do not know the id
(compared trimmed and case-insensitively). They would merge every stranger who
shares them into one person, so they never link. All-zero values (``000``,
the nil UUID) are blocked too (``is_blocked``)."""

LINKED_SOURCE: Final = "engine"
REDERIVED_SOURCE: Final = "engine:unlink"
"""The ``source`` of an ``identity_linked`` an unlink wrote: a side re-derived
from its evidence, which the processor folds again from every event."""
UNLINK_SOURCE: Final = "engage identity unlink"


class Identifier(NamedTuple):
    """One identifier of a person: its kind (``KINDS``) and normalized value.

    A named tuple rather than a dataclass: the fold hashes and compares
    identifiers on every event, and a tuple does both in C."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def is_blocked(value: str) -> bool:
    """True for a value that must never link (``BLOCKED``, or all zeros, dashes
    allowed, as in the nil UUID ``00000000-0000-0000-0000-000000000000``)."""
    folded = value.strip().lower()
    if folded in BLOCKED:
        return True
    return "0" in folded and not folded.strip("0-")


def normalize(kind: str, value: str) -> str:
    """Emails are trimmed and lower-cased (``Ada@X.test `` is ``ada@x.test``);
    ids are exact, as the upstream systems compare them."""
    if kind not in KINDS:
        raise ValueError(f"unknown identifier kind {kind!r} (one of {', '.join(KINDS)})")
    return value.strip().lower() if kind == EMAIL else value


def identifier(kind: str, value: str) -> Identifier | None:
    """The normalized identifier, or None when the value is blocked."""
    normalized = normalize(kind, value)
    return None if is_blocked(normalized) else Identifier(kind, normalized)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one event claims: its identifiers belong to one person.

    ``identifiers`` are normalized, without blocked values, at most one per
    kind, primary first (the identifier whose person the event belongs to:
    its customer id, else its anonymous id). ``at`` is the event's time."""

    event_id: str
    at: Micros
    identifiers: tuple[Identifier, ...]

    @property
    def primary(self) -> Identifier:
        return self.identifiers[0]


def may_link(event: Touchpoint) -> bool:
    """Only an event with an anonymous id, or an identify (its email), can
    link anything: the rest carry one customer id, which names its own
    person, and are skipped before any identity work."""
    return event.anonymous_id is not None or event.type == "identify"


def evidence_of(
    event: Touchpoint, pseudonym: Callable[[str], str] | None = None
) -> Evidence | None:
    """The identity claim of a touchpoint, or None when it names no linkable
    id (every id blocked): then it stays its ``customer_id``'s own, as before
    identity resolution. ``pseudonym``: how the email (normalized first) is
    named in the claim, where the claim is kept (the identity store keeps a
    keyed pseudonym, never the address); by default the address itself."""
    found: list[Identifier] = []
    anonymous = event.anonymous_id
    if anonymous is None or event.customer_id != anonymous:
        customer = identifier(CUSTOMER_ID, event.customer_id)
        if customer is not None:
            found.append(customer)
    if anonymous is not None:
        anon = identifier(ANONYMOUS_ID, anonymous)
        if anon is not None:
            found.append(anon)
    if not found:
        return None
    email = event.properties.get("email") if event.type == "identify" else None
    if isinstance(email, str):
        linked = identifier(EMAIL, email)
        if linked is not None:
            if pseudonym is not None:
                linked = Identifier(EMAIL, pseudonym(linked.value))
            found.insert(1, linked)
    return Evidence(event.event_id, event.occurred_at, tuple(found))


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """What both identity records name: a person and one of its identifiers."""

    person_id: str
    kind: str
    value: str

    @property
    def identifier(self) -> Identifier:
        return Identifier(self.kind, self.value)


@dataclass(frozen=True, slots=True)
class IdentityLinked(IdentityRecord):
    """``identity_linked``: from this record on, the identifier belongs to the
    person, because of the evidence event. Written by the engine whenever an
    identifier joins a person or moves to another one (a merge, a re-derivation
    after an unlink); never rewritten."""

    evidence: str
    """The event_id of the event that linked it."""
    at: Micros
    """The evidence event's ``occurred_at``."""
    source: str = LINKED_SOURCE


@dataclass(frozen=True, slots=True)
class IdentityUnlinked(IdentityRecord):
    """``identity_unlinked``: an operator's ``engage identity unlink PERSON
    IDENTIFIER --reason TEXT``. From this record on the identifier is kept
    apart from every identifier the person then had, and both sides are
    re-derived from their evidence (``projections.identity``)."""

    reason: str
    at: Micros
    """When the unlink was asked for (the processor's clock, not wall time)."""
    source: str = UNLINK_SOURCE


IdentityFact = Evidence | IdentityUnlinked
"""What the identity fold reads, in log order."""
