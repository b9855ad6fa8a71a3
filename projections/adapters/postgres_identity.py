"""The identity store on PostgreSQL: ``identity_persons`` (one JSON row per
person) and ``identity_identifiers`` (every identifier to its person).

A publisher keeps the persons it has read or written in memory (``_Cache``)
and reads from the tables only the identifiers it has not met: most events
with an anonymous id come from a device the publisher has already routed.
The cache is right only while nobody else writes, so every write bumps
``identity_generation`` in its own transaction, and a transaction that finds
another number there than the one this store last saw starts from an empty
cache. What a transaction read or wrote joins the cache only once it has
committed."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import orjson
import psycopg

from events.adapters.connection import connect
from events.adapters.postgres import append_entries
from events.errors import StorageError
from events.identity import ANONYMOUS_ID, CUSTOMER_ID, EMAIL, Identifier
from events.ports import AppendResult, Entry
from projections.identity import IdentityGraph, Person
from projections.identity_json import person_from_json, person_to_json
from projections.identity_ports import Pseudonym, person_key

IDENTITY_LOCK: Final = 0x1D_E7_17_1
"""The advisory lock routed publishes take, so identity folds never interleave."""

CACHE_LIMIT: Final = 500_000
"""Identifiers kept in memory at most; past it the cache starts again empty
(a long-running server must not grow without bound)."""

Conn = psycopg.Connection[tuple[Any, ...]]

_ANY_KEY: Final = "ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
"""Any of the person keys in one JSON array: one text parameter, not an array
whose every element psycopg would quote (a batch names thousands)."""


_IDENTIFIERS: Final = "json_to_recordset(%s::json) AS u(kind text, value text)"
"""Identifiers as one JSON parameter (``_identifiers_json``): rows ``u``."""


_LINKS: Final = "json_array_elements(p.state->'links') AS l"
"""A stored person's links (``projections.identity_json``: kind and value
first): its identifiers, read from its own row. ``identity_identifiers`` has
no index by person to find them with: every write to it is by identifier."""


class _Cache:
    """Persons by each of their identifiers, as of generation ``seen``."""

    def __init__(self) -> None:
        self.seen: int | None = None
        self.persons: dict[Identifier, Person] = {}

    def reset(self, generation: int | None = None) -> None:
        self.seen = generation
        self.persons = {}


class _Tx:
    def __init__(
        self, conn: Conn, same_database: bool, pseudonym: Pseudonym, cache: _Cache
    ) -> None:
        self._conn = conn
        self._same = same_database
        self._pseudonym = pseudonym
        self._cache = cache
        self.staged: dict[Identifier, Person] = {}
        """Persons this transaction read or wrote: cached once it commits."""
        self.dropped: set[Identifier] = set()
        """Identifiers of persons it deleted: uncached once it commits."""
        self.wrote = False
        self._loaded: dict[Identifier, Person] = {}

    def pseudonym(self, email: str) -> str:
        return self._pseudonym(email.strip().lower())

    def load(self, identifiers: Collection[Identifier]) -> list[Person]:
        cached = self._cache.persons
        found: dict[Identifier, Person] = {}
        missing = []
        for identifier in identifiers:
            person = cached.get(identifier)
            if person is None:
                missing.append(identifier)
            else:
                found[person.key] = person
        if missing:
            rows = self._conn.execute(
                "SELECT p.state FROM identity_persons p WHERE p.person_key IN"
                " (SELECT i.person_key FROM " + _IDENTIFIERS + " JOIN identity_identifiers i"
                "  ON i.kind = u.kind AND i.value = u.value)",
                (_identifiers_json(missing),),
            ).fetchall()
            for row in rows:
                person = person_from_json(_json(row[0]))
                found[person.key] = person
                self.staged.update((i, person) for i in person.identifiers)
        self._loaded.update(found)
        return list(found.values())

    def find(self, value: str) -> Person | None:
        return _find(self._conn, value, self.pseudonym)

    def persons(self, person_ids: Collection[str]) -> dict[str, Person]:
        return _persons(self._conn, person_ids)

    def identifiers(self, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
        return _identifiers(self._conn, person_ids)

    def save(self, graph: IdentityGraph) -> None:
        conn = self._conn
        changed = [graph.persons[k] for k in sorted(graph.changed) if k in graph.persons]
        if not graph.removed and not changed:
            return
        self.wrote = True
        for key in graph.removed:
            old = self._loaded.get(key)
            self.dropped.update(old.identifiers if old is not None else (key,))
        for person in changed:
            self.staged.update((i, person) for i in person.identifiers)
        # rows to clear first: only a person that was stored has any (one
        # first built by this batch was not, or ``load`` would have found it),
        # its index rows by their own key (it was loaded: its identifiers are
        # known); then every changed person and its index rows are new rows,
        # copied in (no upsert: nothing else can hold their keys or identifiers)
        stored = [self._loaded[k] for k in graph.removed if k in self._loaded]
        stored += [self._loaded[p.key] for p in changed if p.key in self._loaded]
        if stored:
            conn.execute(
                "DELETE FROM identity_identifiers i USING "
                + _IDENTIFIERS
                + " WHERE i.kind = u.kind AND i.value = u.value",
                (_identifiers_json(i for p in stored for i in p.identifiers),),
            )
            conn.execute(
                "DELETE FROM identity_persons WHERE person_key = " + _ANY_KEY,
                (_dumps([person_key(p.key) for p in stored]),),
            )
        if not changed:
            return
        cur = conn.cursor()
        with cur.copy("COPY identity_persons (person_key, person_id, state) FROM STDIN") as copy:
            for p in changed:
                copy.write_row((person_key(p.key), p.person_id, _dumps(person_to_json(p))))
        with cur.copy("COPY identity_identifiers (kind, value, person_key) FROM STDIN") as copy:
            for p in changed:
                named = person_key(p.key)
                for i in p.identifiers:
                    copy.write_row((i.kind, i.value, named))

    def append(self, stream: str, entries: Sequence[Entry], partitions: int) -> AppendResult | None:
        if not self._same:
            return None
        return append_entries(self._conn, stream, entries, partitions)


class PostgresIdentityStore:
    """``same_database``: the log is the PostgreSQL log of this database, so a
    routed batch is appended in the identity transaction (not in Kafka mode)."""

    def __init__(self, dsn: str, *, same_database: bool, pseudonym: Pseudonym) -> None:
        self._dsn = dsn
        self._same = same_database
        self._pseudonym = pseudonym
        self._conn: Conn | None = None
        self._cache = _Cache()

    def _db(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._dsn)
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        conn = self._db()
        cache = self._cache
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (IDENTITY_LOCK,))
                # a statement of its own: one statement's snapshot is taken
                # before it waits for the lock, and would miss the last writer
                row = conn.execute("SELECT n FROM identity_generation").fetchone()
                generation = None if row is None else int(row[0])
                if generation is None or generation != cache.seen:
                    cache.reset(generation)
                tx = _Tx(conn, self._same, self._pseudonym, cache)
                yield tx
                if tx.wrote:
                    bumped = conn.execute(
                        "UPDATE identity_generation SET n = n + 1 RETURNING n"
                    ).fetchone()
                    generation = None if bumped is None else bumped[0]
        except psycopg.Error as exc:
            raise StorageError(f"resolving identities failed: {exc}") from None
        # committed: what it read or wrote is now what the tables hold (a
        # transaction that raised never gets here, so its staging is dropped)
        if len(cache.persons) + len(tx.staged) > CACHE_LIMIT:
            cache.reset()
        cache.seen = generation
        if generation is not None:
            for identifier in tx.dropped - tx.staged.keys():
                cache.persons.pop(identifier, None)
            cache.persons.update(tx.staged)

    def pseudonym(self, email: str) -> str:
        return self._pseudonym(email.strip().lower())

    def find(self, value: str) -> Person | None:
        conn = self._db()
        with conn.transaction():
            return _find(conn, value, self.pseudonym)

    def persons(self, person_ids: Collection[str]) -> dict[str, Person]:
        conn = self._db()
        with conn.transaction():
            return _persons(conn, person_ids)

    def identifiers(self, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
        conn = self._db()
        with conn.transaction():
            return _identifiers(conn, person_ids)

    def forget(self, person_id: str) -> int:
        conn = self._db()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (IDENTITY_LOCK,))
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT person_key FROM identity_persons WHERE person_id = %s", (person_id,)
                )
            ]
            conn.execute(
                "DELETE FROM identity_identifiers i USING identity_persons p, "
                + _LINKS
                + " WHERE p.person_id = %s AND i.kind = l->>0 AND i.value = l->>1",
                (person_id,),
            )
            conn.execute("DELETE FROM identity_persons WHERE person_key = ANY(%s)", (keys,))
            conn.execute("UPDATE identity_generation SET n = n + 1")
        self._cache.reset()
        return len(keys)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _json(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else json.loads(raw)


def _find(conn: Conn, value: str, pseudonym: Pseudonym) -> Person | None:
    for kind in (CUSTOMER_ID, ANONYMOUS_ID, EMAIL):
        wanted = pseudonym(value) if kind == EMAIL else value
        row = conn.execute(
            "SELECT p.state FROM identity_identifiers i"
            " JOIN identity_persons p ON p.person_key = i.person_key"
            " WHERE i.kind = %s AND i.value = %s",
            (kind, wanted),
        ).fetchone()
        if row is not None:
            return person_from_json(_json(row[0]))
    return None


def _identifiers(conn: Conn, person_ids: Collection[str]) -> dict[str, frozenset[Identifier]]:
    if not person_ids:
        return {}
    rows = conn.execute(
        "SELECT p.person_id, l->>0, l->>1 FROM identity_persons p, "
        + _LINKS
        + " WHERE p.person_id = ANY(%s)",
        (list(person_ids),),
    ).fetchall()
    found: dict[str, set[Identifier]] = {}
    for person_id, kind, value in rows:
        found.setdefault(str(person_id), set()).add(Identifier(str(kind), str(value)))
    return {p: frozenset(ids) for p, ids in found.items()}


def _persons(conn: Conn, person_ids: Collection[str]) -> dict[str, Person]:
    if not person_ids:
        return {}
    rows = conn.execute(
        "SELECT state FROM identity_persons WHERE person_id = ANY(%s)", (list(person_ids),)
    ).fetchall()
    found = [person_from_json(_json(r[0])) for r in rows]
    return {p.person_id: p for p in found}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _identifiers_json(identifiers: Iterable[Identifier]) -> str:
    return _dumps([{"kind": i.kind, "value": i.value} for i in identifiers])
