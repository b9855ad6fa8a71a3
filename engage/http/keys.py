"""API keys: one per upstream source (scope ``ingest``) or reader (scope ``read``).

Only a SHA-256 hash of each key is stored. The keys are 256-bit random
tokens, so a slow password hash would add latency to every request without
adding safety; a leaked table still yields no usable key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

import psycopg

from engage.database import connect
from engage.errors import EngageError, NotFound, StorageError

Scope = Literal["ingest", "read", "admin"]
SCOPES: Final = ("ingest", "read", "admin")
"""``admin``: privacy requests (erasure, access export) and nothing else."""
KEY_PREFIX: Final = "egk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    scope: str
    prefix: str
    created_at: str
    revoked_at: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The key store on PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn = connect(dsn, autocommit=True)

    def create(self, name: str, scope: str) -> tuple[ApiKey, str]:
        """Create a key; returns its record and the key itself, shown only once."""
        if scope not in SCOPES:
            raise EngageError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if not name.strip():
            raise EngageError("a key needs a name (for example the upstream system it is for)")
        key = f"{KEY_PREFIX}{scope[0]}_{secrets.token_urlsafe(32)}"
        prefix = key[:10]
        try:
            row = self._conn.execute(
                "INSERT INTO api_keys (name, scope, key_hash, prefix) VALUES (%s, %s, %s, %s)"
                " RETURNING id, to_char(created_at AT TIME ZONE 'UTC',"
                ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')',
                (name, scope, hash_key(key), prefix),
            ).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"creating the key failed: {exc}") from None
        assert row is not None
        return ApiKey(int(row[0]), name, scope, prefix, str(row[1]), None), key

    def lookup(self, key: str) -> ApiKey | None:
        """The live key with this value, or None (unknown or revoked).

        Every request asks the database (no cache), so a revoked key stops
        working at once; a dropped connection is reopened once."""
        query = (
            "SELECT id, name, scope, prefix, created_at::text, revoked_at::text FROM api_keys"
            " WHERE key_hash = %s AND revoked_at IS NULL"
        )
        digest = hash_key(key)
        try:
            row = self._conn.execute(query, (digest,)).fetchone()
        except psycopg.OperationalError:
            self._conn.close()
            self._conn = connect(self._dsn, autocommit=True)
            try:
                row = self._conn.execute(query, (digest,)).fetchone()
            except psycopg.Error as exc:
                raise StorageError(f"checking the API key failed: {exc}") from None
        return None if row is None else ApiKey(*_typed(row))

    def all(self) -> list[ApiKey]:
        rows = self._conn.execute(
            "SELECT id, name, scope, prefix,"
            " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
            " to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " FROM api_keys ORDER BY id"
        ).fetchall()
        return [ApiKey(*_typed(r)) for r in rows]

    def revoke(self, name_or_id: str) -> int:
        """Revoke every live key with this name (or this id); returns how many."""
        ident = int(name_or_id) if name_or_id.isdigit() else -1
        cur = self._conn.execute(
            "UPDATE api_keys SET revoked_at = now()"
            " WHERE (name = %s OR id = %s) AND revoked_at IS NULL",
            (name_or_id, ident),
        )
        if cur.rowcount == 0:
            raise NotFound(f"no live API key named {name_or_id!r}")
        return cur.rowcount

    def close(self) -> None:
        self._conn.close()


def _typed(row: tuple[Any, ...]) -> tuple[int, str, str, str, str, str | None]:
    return (int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])
