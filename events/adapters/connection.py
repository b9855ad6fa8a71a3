"""Connecting to PostgreSQL, for every adapter that keeps data there.

It lives at the lowest layer that connects (the PostgreSQL log), so the
projection and consumer adapters above reach it by importing down.
"""

from __future__ import annotations

from typing import Any

import psycopg

from events.errors import StorageError
from events.redact import mask_url


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection, or one clear ``StorageError`` line instead of libpq's text."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot connect to PostgreSQL: {mask_url(reason)}") from None
