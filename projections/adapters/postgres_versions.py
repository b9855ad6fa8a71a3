"""Projection versions on PostgreSQL: build a new version beside the live one, swap atomically.

The live projection is the set of tables in ``PROJECTION_TABLES`` in the
``public`` schema, where every reader and the processor find them by their
plain names. A replay builds the next version in a schema of its own,
``engage_replay_<n>``, holding tables created ``LIKE`` the live ones; the
replay's store connection puts that schema first on its ``search_path``, so
the *unchanged* store adapter and pipeline write there (one pipeline, one
adapter, no second copy of any SQL). The same schema also holds the replay's
own ``trigger_outbox`` and ``dead_letters``: the shadow report of what the
rules would have fired, which never reaches the live outbox or the triggers
stream.

Why move tables between schemas rather than point readers at versioned table
names: PostgreSQL DDL is transactional, so one transaction that moves the live
tables out (into ``engage_retired_<n-1>``) and the built ones in swaps the
whole set atomically, and every reader keeps using plain names with no pointer
lookup per query (the CLI, the HTTP API and the processor need no change).
Statements resolve names when they take their locks, and prepared statements
are re-planned after DDL, so a statement blocked during the swap runs against
the new tables afterwards.

Why readers never see a mix and the live processor never writes across the
swap: the swap first takes ACCESS EXCLUSIVE locks on every live projection
table, ``consumer_offsets`` first. Every processor batch starts by locking its
offset rows there, so an in-flight batch finishes (the lock waits for it) and
the next one blocks until the swap commits, then reads its offsets from the
new version. A reading transaction that touched an old table holds it until it
ends, so it sees only the old version; one that starts later sees only the new.
While the locks are held, the replay catches up with whatever the live
processor had read beyond it, so the new version is at least as far along as
the one it replaces. ``engage_meta.projection_version`` changes in the same
transaction, for anything that caches projection state to check.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from events.adapters.connection import connect
from events.errors import EngageError, StorageError

PROJECTION_TABLES: Final = (
    "consumer_offsets",
    "partition_writers",
    "processor_clock",
    "seen_events",
    "profiles",
    "timers",
    "kpi_flows",
    "kpi_active",
    "kpi_stage_changes",
    "kpi_triggers",
    "trigger_conversions",
)
"""Everything the processor derives from the log, in lock order: consumer_offsets
first, because every processor batch locks it first. A table missing from the
database (``partition_writers`` arrives with the processor's profile cache) is
skipped. ``partition_writers`` must move with the profiles: the new version's
writer tokens are the replay's, so a live processor's in-memory profiles are
seen to be stale after the swap and reloaded. ``seen_events`` (Kafka mode: the
event ids applied) is rebuilt too, or the replay would drop every event as a
repeat."""

_BY_CONSUMER: Final[tuple[str, ...]] = ("consumer_offsets", "partition_writers", "processor_clock")
"""Tables keyed by consumer: other consumers' rows are carried into the new version."""

REPORT_TABLES: Final = ("trigger_outbox", "dead_letters")
"""Created empty in a build so a replay's triggers and poison records stay in it."""

_REPLAY_LOCK: Final = 4242002
LOCK_PATIENCE: Final = 120.0
"""Seconds a swap keeps retrying for its locks before it gives up (and the
live version stays as it was)."""
LIVE: Final = "public"


@dataclass(frozen=True)
class Build:
    version: int
    schema: str
    dsn: str
    """The DSN whose connections read and write this build's tables."""
    tables: tuple[str, ...] = PROJECTION_TABLES
    """The projection tables it holds, in lock order."""


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``schema`` first on the search path (then ``public`` for the log)."""
    params = conninfo_to_dict(dsn)
    options = str(params.get("options") or "")
    path = f"-c search_path={schema},{LIVE}"
    params["options"] = f"{options} {path}".strip()
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def report_schema(version: int) -> str:
    return f"engage_replay_{version}"


def retired_schema(version: int) -> str:
    return f"engage_retired_{version}"


class PostgresVersions:
    """Creates builds, swaps them in, and drops retired versions."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn = connect(dsn, autocommit=True)
        self._locked = False

    def _tables(self) -> tuple[str, ...]:
        present = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (LIVE,)
            ).fetchall()
        }
        return tuple(t for t in PROJECTION_TABLES if t in present)

    def live_version(self) -> int:
        row = self._conn.execute(
            "SELECT value FROM engage_meta WHERE key = 'projection_version'"
        ).fetchone()
        return 1 if row is None else int(row[0])

    def begin(self) -> Build:
        """Take the replay lock and create the next version's empty tables."""
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (_REPLAY_LOCK,)).fetchone()
        if row is None or not row[0]:
            raise EngageError("another `engage replay` is running on this database")
        self._locked = True
        version = self.live_version() + 1
        schema = report_schema(version)
        tables = self._tables()
        try:
            with self._conn.transaction():
                # a build left by an interrupted replay is never live: start afresh
                self._conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
                self._conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                for table in tables + REPORT_TABLES:
                    self._conn.execute(
                        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                            sql.Identifier(schema, table), sql.Identifier(LIVE, table)
                        )
                    )
                    self._name_indexes_as_live(schema, table)
        except psycopg.Error as exc:
            raise StorageError(f"creating the replay's tables failed: {exc}") from None
        return Build(version, schema, with_search_path(self._dsn, schema), tables)

    def _name_indexes_as_live(self, schema: str, table: str) -> None:
        """Give the build's indexes the live ones' names. ``LIKE`` names copied
        indexes itself (``timers_partition_due_at_idx`` for ``timers_due``),
        and once swapped in, a later ``migrate`` would add ``CREATE INDEX IF
        NOT EXISTS timers_due`` again beside it: one more duplicate index per
        replay."""
        query = (
            "SELECT i.relname, regexp_replace(pg_get_indexdef(x.indexrelid), '^.* USING ', '')"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = %s AND t.relname = %s"
        )
        live = {d: str(n) for n, d in self._conn.execute(query, (LIVE, table)).fetchall()}
        for name, definition in self._conn.execute(query, (schema, table)).fetchall():
            wanted = live.get(definition)
            if wanted is not None and wanted != name:
                self._conn.execute(
                    sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                        sql.Identifier(schema, str(name)), sql.Identifier(wanted)
                    )
                )

    def swap(self, build: Build, consumer: str, catch_up: Callable[[], object]) -> None:
        """Make ``build`` the live version in one transaction (see the module doc).

        ``catch_up`` runs while the live tables are locked, on its own
        connection, and must bring the build to the head of the log."""
        conn = self._conn
        retired = retired_schema(build.version - 1)
        try:
            with conn.transaction():
                self._lock_live(build.tables)
                catch_up()
                # other consumers' positions and clocks are not the replay's to rebuild
                for table in (t for t in _BY_CONSUMER if t in build.tables):
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} SELECT * FROM {} WHERE consumer <> %s"
                            " ON CONFLICT DO NOTHING"
                        ).format(sql.Identifier(build.schema, table), sql.Identifier(LIVE, table)),
                        (consumer,),
                    )
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(retired))
                )
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(retired)))
                for table in build.tables:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                            sql.Identifier(LIVE, table), sql.Identifier(retired)
                        )
                    )
                for table in build.tables:
                    conn.execute(
                        sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                            sql.Identifier(build.schema, table), sql.Identifier(LIVE)
                        )
                    )
                conn.execute(
                    "INSERT INTO engage_meta (key, value) VALUES ('projection_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (str(build.version),),
                )
        except psycopg.Error as exc:
            raise StorageError(f"swapping in the replayed projections failed: {exc}") from None

    def _lock_live(self, tables: tuple[str, ...]) -> None:
        """Lock every live projection table without ever waiting while holding one.

        ``consumer_offsets`` is waited for (holding nothing yet), which lets an
        in-flight processor batch finish and queues the next. The rest are
        taken with NOWAIT: a reader whose single statement reads two projection
        tables locks them in its own order, and a swap that waited for one
        while holding another could deadlock with it. When one is busy, the
        savepoint gives everything back and the swap tries again shortly, so
        readers never fail; the swap just waits for a quiet moment."""
        conn = self._conn
        first, *rest = tables
        offsets = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(LIVE, first)
        )
        others = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(
            sql.SQL(", ").join(sql.Identifier(LIVE, t) for t in rest)
        )
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("SET LOCAL lock_timeout = {}").format(
                            sql.Literal(f"{LOCK_PATIENCE:.0f}s")
                        )
                    )
                    conn.execute(offsets)
                    conn.execute(others)
                    conn.execute("SET LOCAL lock_timeout = 0")
                return
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() > deadline:
                    raise StorageError(
                        "could not lock the live projections for the swap within "
                        f"{LOCK_PATIENCE:.0f}s: a long transaction holds them; try again"
                    ) from None
                time.sleep(random.uniform(0.005, 0.05))

    def drop_retired(self, version: int, patience: float = 30.0) -> bool:
        """Drop a retired version, after the swap has committed; False if it
        could not within ``patience`` seconds (it then stays, harmless).

        Statements that queued behind the swap still touch the old tables for a
        moment while they re-resolve names, so the tables are locked with
        NOWAIT and the drop retried, never waiting while holding a lock."""
        schema = retired_schema(version)
        conn = self._conn
        deadline = time.monotonic() + patience
        while True:
            try:
                with conn.transaction():
                    tables = conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
                    ).fetchall()
                    if tables:
                        conn.execute(
                            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(
                                sql.SQL(", ").join(sql.Identifier(schema, t) for (t,) in tables)
                            )
                        )
                    conn.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )
                return True
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() > deadline:
                    return False
                time.sleep(random.uniform(0.005, 0.05))
            except psycopg.Error as exc:
                raise StorageError(f"dropping the retired projections failed: {exc}") from None

    def reclaim(self, keep_report: int) -> list[str]:
        """Space housekeeping after a swap: drop the report schemas of replays
        before ``keep_report`` (the newest report stays for reading) and the
        versions retired before the one this swap retired (``--keep-old`` keeps
        the replaced version until the next replay), then CHECKPOINT so the
        write-ahead log the build produced can be removed.

        A replay writes every projection anew, and each one used to leave its
        report behind (about 6 MB per replay of the demo) besides the write-ahead
        log of the build (with PostgreSQL's default sizing, 200+ MB of the demo's
        430 MB data directory was WAL; see ``engage.database.EMBEDDED_SETTINGS``).
        The checkpoint needs
        superuser (or pg_checkpoint) rights: on a server of your own without
        them it is skipped, and the server's own checkpoints do the same later.
        Returns the schemas dropped."""
        rows = self._conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^engage_(replay|retired)_[0-9]+$'"
        ).fetchall()

        def version(name: str) -> int:
            return int(name.rsplit("_", 1)[1])

        old = sorted(
            (
                name
                for name in (str(r[0]) for r in rows)
                if version(name) < (keep_report if "replay" in name else keep_report - 1)
            ),
            key=lambda name: (version(name), name),
        )
        try:
            for schema in old:
                self._conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
        except psycopg.Error as exc:
            raise StorageError(f"dropping earlier replay reports failed: {exc}") from None
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            self._conn.execute("CHECKPOINT")
        return old

    def report(self, build: Build) -> list[tuple[str, int, int, int]]:
        """Per rule: (rule_id, would fire in the replay, fired live, same trigger_id both)."""
        query = sql.SQL(
            "WITH r AS (SELECT rule_id, trigger_id FROM {outbox}),"
            " l AS (SELECT rule_id, trigger_id FROM trigger_log"
            "       UNION SELECT rule_id, trigger_id FROM trigger_outbox)"
            " SELECT coalesce(r.rule_id, l.rule_id),"
            "  count(r.trigger_id), count(l.trigger_id),"
            "  count(r.trigger_id) FILTER (WHERE l.trigger_id IS NOT NULL)"
            " FROM r FULL JOIN l ON r.trigger_id = l.trigger_id"
            " GROUP BY 1 ORDER BY 1"
        ).format(outbox=sql.Identifier(build.schema, "trigger_outbox"))
        rows: list[tuple[Any, ...]] = self._conn.execute(query).fetchall()
        return [(str(r), int(a), int(b), int(c)) for r, a, b, c in rows]

    def poison(self, build: Build) -> int:
        row = self._conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(build.schema, "dead_letters"))
        ).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        if self._locked and not self._conn.closed:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (_REPLAY_LOCK,))
        self._conn.close()
