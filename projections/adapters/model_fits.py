"""Fitted model parameters on PostgreSQL: the ``model_fits`` table, one versioned row per fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from events.adapters.connection import connect
from events.errors import StorageError
from events.model import Micros
from projections.model_fit import ModelFit
from projections.predictions import ModelParams


@dataclass(frozen=True, slots=True)
class StoredFit:
    version: int
    fitted_at: str
    """Wall-clock time of the fit, ISO 8601 UTC (bookkeeping, never used by the model)."""
    as_of: Micros
    params: ModelParams
    fit: dict[str, Any]


_INSERT = """
    INSERT INTO model_fits (as_of, params, fit) VALUES (%s, %s, %s)
    RETURNING version, to_char(fitted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        as_of, params::text, fit::text
"""
_LATEST = """
    SELECT version, to_char(fitted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        as_of, params::text, fit::text
    FROM model_fits ORDER BY version DESC LIMIT 1
"""


class PostgresModelFits:
    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn, autocommit=True)

    def save(self, fit: ModelFit, as_of: Micros) -> StoredFit:
        """Store a fit as the next version."""
        body = fit.to_json()
        params = body.pop("params")
        try:
            row = self._conn.execute(
                _INSERT,
                (as_of, orjson.dumps(params).decode(), orjson.dumps(body).decode()),
            ).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"storing the model fit failed: {exc}") from None
        assert row is not None
        return _stored(row)

    def latest(self) -> StoredFit | None:
        """The current fit: the highest version, or None before the first fit."""
        try:
            row = self._conn.execute(_LATEST).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"reading the model fit failed: {exc}") from None
        return None if row is None else _stored(row)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresModelFits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stored(row: tuple[Any, ...]) -> StoredFit:
    return StoredFit(
        int(row[0]),
        str(row[1]),
        int(row[2]),
        ModelParams.from_json(orjson.loads(row[3])),
        orjson.loads(row[4]),
    )
