"""The ``KeyRing`` on PostgreSQL: person keys wrapped by the master key.

A database records a check value sealed with the master key the first time a
key is needed (``engage_meta``), so a different master key is refused up front
with one clear line instead of failing on the first old event; and a new key
file is created only while the database has no check value yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.adapters.connection import connect
from events.keyring import (
    NONCE_BYTES,
    PersonKey,
    PrivacyError,
    new_data_key,
    pseudonymizer,
    unwrap,
    wrap,
)
from events.master_key import MasterKeySource

CHECK_KEY: Final = "master_key_check"
CHECK_TEXT: Final = b"engage master key check"


class PostgresKeyRing:
    def __init__(self, dsn: str, source: MasterKeySource) -> None:
        self._dsn = dsn
        self._source = source
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._master: AESGCM | None = None
        self._pseudonym: Callable[[str], str] | None = None

    # -- connection and master key, both on first use

    def _db(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._dsn)
        return self._conn

    def master(self) -> AESGCM:
        """The master cipher, checked against the database's check value."""
        if self._master is not None:
            return self._master
        conn = self._db()
        with conn.transaction():
            row = conn.execute(
                "SELECT value FROM engage_meta WHERE key = %s", (CHECK_KEY,)
            ).fetchone()
        raw = self._source.load_raw(may_create=row is None)
        master = AESGCM(raw)
        if row is None:
            nonce = os.urandom(NONCE_BYTES)
            check = (nonce + master.encrypt(nonce, CHECK_TEXT, None)).hex()
            with conn.transaction():
                conn.execute(
                    "INSERT INTO engage_meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (CHECK_KEY, check),
                )
                row = conn.execute(
                    "SELECT value FROM engage_meta WHERE key = %s", (CHECK_KEY,)
                ).fetchone()
        assert row is not None
        blob = bytes.fromhex(str(row[0]))
        try:
            master.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
        except (InvalidTag, ValueError):
            raise PrivacyError(
                f"wrong master key ({self._source.describe()}): it is not the key this "
                "database's personal data was encrypted with; nothing was written"
            ) from None
        self._master = master
        self._pseudonym = pseudonymizer(raw)
        return master

    def pseudonym(self, text: str) -> str:
        if self._pseudonym is None:
            self.master()
        assert self._pseudonym is not None
        return self._pseudonym(text)

    # -- the port

    def keys_for(self, persons: Collection[str]) -> dict[str, PersonKey]:
        if not persons:
            return {}
        master = self.master()
        wanted = list(set(persons))
        conn = self._db()
        with conn.transaction():
            rows = conn.execute(
                "SELECT key_id, person, wrapped FROM privacy_keys WHERE person = ANY(%s)",
                (wanted,),
            ).fetchall()
            found = {str(r[1]) for r in rows}
            missing = [p for p in wanted if p not in found]
            made: dict[str, PersonKey] = {}
            if missing:  # one round trip for every new person of the batch
                data = {p: new_data_key() for p in missing}
                wrapped = [wrap(master, p, data[p]) for p in missing]
                for key_id, person in conn.execute(
                    "INSERT INTO privacy_keys (person, wrapped)"
                    " SELECT * FROM unnest(%s::text[], %s::bytea[])"
                    " ON CONFLICT (person) DO NOTHING RETURNING key_id, person",
                    (missing, wrapped),
                ).fetchall():
                    # just made here: used as made, no unwrap needed
                    made[str(person)] = PersonKey(int(key_id), str(person), AESGCM(data[person]))
                raced = [p for p in missing if p not in made]
                if raced:  # made meanwhile by another publisher: theirs is the key
                    rows += conn.execute(
                        "SELECT key_id, person, wrapped FROM privacy_keys WHERE person = ANY(%s)",
                        (raced,),
                    ).fetchall()
        return {**{str(r[1]): self._unwrapped(master, r) for r in rows}, **made}

    def keys_by_id(self, key_ids: Collection[int]) -> dict[int, PersonKey]:
        if not key_ids:
            return {}
        master = self.master()
        conn = self._db()
        with conn.transaction():
            rows = conn.execute(
                "SELECT key_id, person, wrapped FROM privacy_keys WHERE key_id = ANY(%s)",
                (list(key_ids),),
            ).fetchall()
        return {int(r[0]): self._unwrapped(master, r) for r in rows}

    @staticmethod
    def _unwrapped(master: AESGCM, row: tuple[Any, ...]) -> PersonKey:
        person = str(row[1])
        return PersonKey(int(row[0]), person, AESGCM(unwrap(master, person, bytes(row[2]))))

    def suppressed(self, persons: Collection[str]) -> set[str]:
        if not persons:
            return set()
        conn = self._db()
        with conn.transaction():
            rows = conn.execute(
                "SELECT person FROM privacy_suppressed WHERE person = ANY(%s)",
                (list(set(persons)),),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def destroy(self, person: str) -> int:
        conn = self._db()
        with conn.transaction():
            return conn.execute("DELETE FROM privacy_keys WHERE person = %s", (person,)).rowcount

    def suppress(self, person: str) -> None:
        conn = self._db()
        with conn.transaction():
            conn.execute(
                "INSERT INTO privacy_suppressed (person) VALUES (%s) ON CONFLICT DO NOTHING",
                (person,),
            )

    def unsuppress(self, person: str) -> bool:
        conn = self._db()
        with conn.transaction():
            cur = conn.execute("DELETE FROM privacy_suppressed WHERE person = %s", (person,))
        return cur.rowcount > 0

    def key_info(self, person: str) -> Mapping[str, object] | None:
        conn = self._db()
        with conn.transaction():
            row = conn.execute(
                "SELECT key_id, to_char(created_at AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\') FROM privacy_keys WHERE person = %s',
                (person,),
            ).fetchone()
        return None if row is None else {"key_id": int(row[0]), "created_at": str(row[1])}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
