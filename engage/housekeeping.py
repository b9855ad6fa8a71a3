"""How much room Engage takes, for ``engage status``: the database, its parts,
and (embedded server) the data directory on disk with its write-ahead log.

What grows and what reclaims it is written down in the README's
"Housekeeping" section; this module only measures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engage.database import connect


@dataclass(frozen=True)
class Sizes:
    database: int
    """pg_database_size: every table and index, live and kept."""
    log: int
    """The touchpoints and triggers log tables (the PostgreSQL log)."""
    kept_versions: int
    """Replay reports (engage_replay_<n>) and kept old versions (engage_retired_<n>)."""
    on_disk: int | None = None
    """The embedded server's data directory, write-ahead log included."""
    wal: int | None = None


def measure(dsn: str, pgdata: Path | None) -> Sizes:
    with connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()),"
            " coalesce(sum(pg_total_relation_size(c.oid))"
            "   FILTER (WHERE n.nspname = 'public'"
            "     AND c.relname IN ('touchpoints', 'trigger_log')), 0),"
            " coalesce(sum(pg_total_relation_size(c.oid))"
            "   FILTER (WHERE n.nspname ~ '^engage_(replay|retired)_[0-9]+$'), 0)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'm')"
        ).fetchone()
    assert row is not None
    database, log, kept = (int(v) for v in row)
    if pgdata is None or not pgdata.is_dir():
        return Sizes(database, log, kept)
    return Sizes(database, log, kept, _tree(pgdata), _tree(pgdata / "pg_wal"))


def _tree(path: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # a segment removed while we looked
                continue
    return total


def human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
