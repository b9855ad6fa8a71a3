"""The identity store in memory: for the pipeline's fast tests and the
contract suite. One lock stands in for PostgreSQL's advisory lock; a
transaction that raises leaves the persons as they were."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from events.identity import ANONYMOUS_ID, CUSTOMER_ID, EMAIL, Identifier
from events.ports import AppendResult, Entry
from projections.identity import IdentityGraph, Person
from projections.identity_ports import Pseudonym, person_key


class _Tx:
    def __init__(
        self, by_key: dict[str, Person], index: dict[Identifier, str], pseudonym: Pseudonym
    ) -> None:
        self.by_key = by_key
        self.index = index
        self._pseudonym = pseudonym

    def pseudonym(self, email: str) -> str:
        return self._pseudonym(email.strip().lower())

    def load(self, identifiers: Collection[Identifier]) -> list[Person]:
        keys = {self.index[i] for i in identifiers if i in self.index}
        return [self.by_key[k] for k in sorted(keys)]

    def find(self, value: str) -> Person | None:
        for kind in (CUSTOMER_ID, ANONYMOUS_ID, EMAIL):
            wanted = self.pseudonym(value) if kind == EMAIL else value
            key = self.index.get(Identifier(kind, wanted))
            if key is not None:
                return self.by_key[key]
        return None

    def persons(self, person_ids: Collection[str]) -> dict[str, Person]:
        wanted = set(person_ids)
        return {p.person_id: p for p in self.by_key.values() if p.person_id in wanted}

    def identifiers(self, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
        return {k: frozenset(p.identifiers) for k, p in self.persons(person_ids).items()}

    def save(self, graph: IdentityGraph) -> None:
        for key in graph.removed:
            self._drop(person_key(key))
        for key in sorted(graph.changed):
            person = graph.persons.get(key)
            if person is None:
                continue
            self._drop(person_key(key))
            self.by_key[person_key(key)] = person
            for identifier in person.identifiers:
                self.index[identifier] = person_key(key)

    def _drop(self, key: str) -> None:
        old = self.by_key.pop(key, None)
        if old is not None:
            for identifier in old.identifiers:
                if self.index.get(identifier) == key:
                    del self.index[identifier]

    def append(self, stream: str, entries: Sequence[Entry], partitions: int) -> AppendResult | None:
        return None


class MemoryIdentityStore:
    def __init__(self, pseudonym: Pseudonym = str) -> None:
        """``pseudonym``: how emails are kept (the default keeps them as they
        are, for tests that read them back)."""
        self._pseudonym = pseudonym
        self._lock = threading.RLock()
        self._persons: dict[str, Person] = {}
        self._index: dict[Identifier, str] = {}

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._lock:
            tx = _Tx(dict(self._persons), dict(self._index), self._pseudonym)
            yield tx
            self._persons, self._index = tx.by_key, tx.index

    def find(self, value: str) -> Person | None:
        with self._lock:
            return _Tx(self._persons, self._index, self._pseudonym).find(value)

    def persons(self, person_ids: Collection[str]) -> dict[str, Person]:
        with self._lock:
            return _Tx(self._persons, self._index, self._pseudonym).persons(person_ids)

    def identifiers(self, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
        with self._lock:
            return _Tx(self._persons, self._index, self._pseudonym).identifiers(person_ids)

    def forget(self, person_id: str) -> int:
        with self._lock:
            tx = _Tx(self._persons, self._index, self._pseudonym)
            keys = [k for k, p in self._persons.items() if p.person_id == person_id]
            for key in keys:
                tx._drop(key)
            return len(keys)

    def pseudonym(self, email: str) -> str:
        return self._pseudonym(email.strip().lower())

    def close(self) -> None:
        return None
