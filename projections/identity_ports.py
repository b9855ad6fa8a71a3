"""The identity store's port: where the publish step keeps the persons it
routes events to (``projections.identity_router``), and what reads ask of it.

One transaction per routed batch: it takes the identity lock (publishers of
identity-bearing events queue on it, so two never fold the same identifier at
once), loads the persons the batch names, appends the batch keyed by person
and saves the persons it changed. Where the log lives in the same database,
the append is inside that transaction (``IdentityTx.append``), so the identity
records on the log and the persons in the table commit or vanish together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from events.identity import Identifier
from events.ports import AppendResult, Entry
from projections.identity import IdentityGraph, Person

Pseudonym = Callable[[str], str]
"""An email as the identity store keeps it: a keyed pseudonym
(``events.keyring.pseudonymizer``), never the address itself."""


class IdentityReads(Protocol):
    """What a read (``engage profile ID``, ``GET /v1/customers/{id}``) asks."""

    def pseudonym(self, email: str) -> str:
        """How this store names an email (normalized first: trimmed, lower-cased)."""
        ...

    def find(self, value: str) -> Person | None:
        """The person any identifier names: a customer id, else an anonymous
        id, else an email (trimmed, lower-cased, then its pseudonym)."""
        ...

    def persons(self, person_ids: Collection[str]) -> dict[str, Person]:
        """Persons by their person id (missing ones are left out)."""
        ...

    def identifiers(self, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
        """Each existing person's identifiers, without reading the whole
        person: what the processor needs for most identity records."""
        ...


class IdentityTx(IdentityReads, Protocol):
    def load(self, identifiers: Collection[Identifier]) -> list[Person]:
        """The persons holding any of ``identifiers`` (each once)."""
        ...

    def save(self, graph: IdentityGraph) -> None:
        """Write back the persons ``graph`` changed and delete those it removed."""
        ...

    def append(self, stream: str, entries: Sequence[Entry], partitions: int) -> AppendResult | None:
        """Append inside this transaction when the log is in the same
        database; None when it is not (the caller appends to its log before
        commit, so a crash leaves the publish unacknowledged and it is retried)."""
        ...


class IdentityStore(IdentityReads, Protocol):
    def transaction(self) -> AbstractContextManager[IdentityTx]:
        """A locked identity transaction (see the module docstring)."""
        ...

    def forget(self, person_id: str) -> int:
        """Erasure: the person's rows and every identifier index row; how
        many persons went."""
        ...

    def close(self) -> None: ...


def person_key(identifier: Identifier) -> str:
    """A person's key as one text column: ``kind:value``."""
    return f"{identifier.kind}:{identifier.value}"
