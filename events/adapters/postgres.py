"""The ``Log`` port on PostgreSQL, and the dead-letter store.

Each stream is a table. An append locks the partition rows it writes to in
``log_partitions`` (in partition order, so appenders cannot deadlock), drops
ids already on the stream, assigns consecutive offsets and NOTIFYs listeners
on commit. Holding the partition lock until commit is what lets a consumer
poll ``offset >= n`` without ever skipping a late-committing row.
"""

from __future__ import annotations

import select
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import psycopg
from psycopg import sql

from events.adapters.connection import connect
from events.clock import CLOCK_TYPE
from events.dead_letters import RAW_KEEP, DeadLetter, DeadLetterRow, capped
from events.errors import StorageError
from events.keyring import KeyRing
from events.log import TOUCHPOINTS, TRIGGERS, AppendResult, Entry, LogRecord
from events.model import Micros
from events.partitioning import partition_for
from events.ports import ALL_TRIGGERS, TriggerQuery
from events.sealing import NO_PERSON, person_in_raw, seal_text, unseal_texts

CHANNEL: Final = "engage_log"

# stream -> (table, id column)
_TABLES: Final = {TOUCHPOINTS: ("touchpoints", "event_id"), TRIGGERS: ("trigger_log", "trigger_id")}


def _table(stream: str) -> tuple[str, str]:
    try:
        return _TABLES[stream]
    except KeyError:
        raise StorageError(f"unknown log stream {stream!r}") from None


class PostgresLog:
    refuses_repeated_ids = True
    history_filters_by_time = True
    """``customer_history`` applies ``until`` in its query (an index serves it)."""

    def __init__(self, dsn: str, partitions: int) -> None:
        self._dsn = dsn
        self._partitions = partitions
        self._conn = connect(dsn)
        self._listener: psycopg.Connection[tuple[Any, ...]] | None = None

    @property
    def partitions(self) -> int:
        return self._partitions

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        if not entries:
            return AppendResult()
        try:
            with self._conn.transaction():
                return append_entries(self._conn, stream, entries, self._partitions)
        except psycopg.Error as exc:
            raise StorageError(f"appending to the {stream} log failed: {exc}") from None

    def clock_records(self, kind: str = CLOCK_TYPE) -> int:
        """How many touchpoint-log records are clock records (``events.clock``),
        or, with ``kind`` ``events.control.MODEL_TYPE``, model_fitted records."""
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    "SELECT count(*) FROM touchpoints WHERE type = %s", (kind,)
                ).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"counting control records failed: {exc}") from None
        return 0 if row is None else int(row[0])

    def read(self, stream: str, positions: Mapping[int, int], limit: int) -> list[LogRecord]:
        table, _ = _table(stream)
        key_col = "customer_id"
        parts = sorted(positions)
        query = sql.SQL(
            'SELECT t.partition, t."offset", t.{key}, t.payload'
            " FROM unnest(%s::int[], %s::bigint[]) AS c(p, o)"
            ' CROSS JOIN LATERAL (SELECT partition, "offset", {key}, payload FROM {table}'
            '   WHERE partition = c.p AND "offset" >= c.o ORDER BY "offset" LIMIT %s) AS t'
            ' ORDER BY t.partition, t."offset"'
        ).format(key=sql.Identifier(key_col), table=sql.Identifier(table))
        try:
            with self._conn.transaction():
                # binary results: payloads arrive as raw bytes, not hex text to decode
                rows = (
                    self._conn.cursor(binary=True)
                    .execute(query, (parts, [positions[p] for p in parts], limit))
                    .fetchall()
                )
        except psycopg.Error as exc:
            raise StorageError(f"reading the {stream} log failed: {exc}") from None
        return [LogRecord(p, o, k, payload) for p, o, k, payload in rows]

    def customer_history(self, customer_id: str, until: int | None = None) -> list[LogRecord]:
        """One customer's touchpoints in log order, up to an event time (for timelines and
        point-in-time reads); PostgreSQL-only, served by an index."""
        with self._conn.transaction():
            rows = self._conn.execute(
                'SELECT partition, "offset", customer_id, payload FROM touchpoints'
                " WHERE customer_id = %s AND occurred_at <= %s"
                ' ORDER BY "offset"',
                (customer_id, (1 << 63) - 1 if until is None else until),
            ).fetchall()
        return [LogRecord(int(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def customer_histories(self, customer_ids: Collection[str]) -> dict[str, list[LogRecord]]:
        if not customer_ids:
            return {}
        with self._conn.transaction():
            rows = self._conn.execute(
                'SELECT partition, "offset", customer_id, payload FROM touchpoints'
                ' WHERE customer_id = ANY(%s) ORDER BY "offset"',
                (list(customer_ids),),
            ).fetchall()
        out: dict[str, list[LogRecord]] = {}
        for r in rows:
            out.setdefault(str(r[2]), []).append(
                LogRecord(int(r[0]), int(r[1]), str(r[2]), bytes(r[3]))
            )
        return out

    def find_triggers(
        self, query: TriggerQuery = ALL_TRIGGERS, *, newest_first: bool = False
    ) -> list[LogRecord]:
        """Triggers on the stream matching the filters, by fired_at (``newest_first``:
        the latest ``limit`` of them, still returned oldest first); PostgreSQL-only."""
        where, params = trigger_filter(
            customer_id=query.customer_id, rule_id=query.rule_id, since=query.since
        )
        params.append(query.limit if query.limit is not None else (1 << 62))
        order = sql.SQL(
            "fired_at DESC, trigger_id DESC" if newest_first else "fired_at, trigger_id"
        )
        select = sql.SQL(
            'SELECT partition, "offset", customer_id, payload FROM trigger_log WHERE {}'
            " ORDER BY {} LIMIT %s"
        ).format(where, order)
        with self._conn.transaction():
            rows = self._conn.execute(select, params).fetchall()
        if newest_first:
            rows.reverse()
        return [LogRecord(int(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def trigger_counts(self) -> dict[str, int]:
        """Triggers on the stream per rule_id."""
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT rule_id, count(*) FROM trigger_log GROUP BY rule_id"
            ).fetchall()
        return {str(r): int(n) for r, n in rows}

    def heads(self, stream: str) -> dict[int, int]:
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT partition, head FROM log_partitions WHERE stream = %s", (stream,)
            ).fetchall()
        return {int(p): int(h) for p, h in rows}

    def wait(self, timeout: float) -> bool:
        """LISTEN/NOTIFY: wake as soon as an append commits, poll as a fallback."""
        if self._listener is None:
            self._listener = connect(self._dsn, autocommit=True)
            self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        got = False
        for _ in self._listener.notifies(timeout=timeout, stop_after=1):
            got = True
        if got:  # drain the burst without blocking
            ready, _, _ = select.select([self._listener.fileno()], [], [], 0)
            if ready:
                for _ in self._listener.notifies(timeout=0.001):
                    pass
        return got

    def close(self) -> None:
        self._conn.close()
        if self._listener is not None:
            self._listener.close()


class PostgresDeadLetters:
    """Rejected inputs with their raw text, so nothing sent is ever silently lost.

    With ``keys``, the raw text is sealed with the key of the person it names
    (a shared key when it names none) and the person is recorded, so an
    erasure finds the row and shreds it with the rest; ``list`` opens it."""

    def __init__(
        self, conn: psycopg.Connection[tuple[Any, ...]], keys: KeyRing | None = None
    ) -> None:
        self._conn = conn
        self._keys = keys

    def add(self, rows: Sequence[DeadLetterRow]) -> None:
        if not rows:
            return
        persons: list[str | None] | None = None
        sizes: list[int] | None = None
        if self._keys is not None:
            rows, persons, sizes = seal_dead_letters(rows, self._keys)
        with self._conn.transaction():
            add_dead_letters(self._conn, rows, persons, sizes)

    def list(self, limit: int = 100, before: int | None = None) -> list[DeadLetter]:
        """The newest ``limit`` dead letters with an id below ``before``, oldest first."""
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT id,"
                " to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                " stage, source, line_no, event_id, field, reason, raw, raw_bytes, raw_sha256"
                " FROM dead_letters WHERE %s::bigint IS NULL OR id < %s"
                " ORDER BY id DESC LIMIT %s",
                (before, before, limit),
            ).fetchall()
        letters = [DeadLetter(*r) for r in reversed(rows)]
        if self._keys is None:
            return letters
        opened = unseal_texts([d.raw for d in letters], self._keys)
        return [
            d if text == d.raw else replace(d, raw=text)
            for d, text in zip(letters, opened, strict=True)
        ]

    def purge(self, before: Micros) -> int:
        """Delete dead letters received before ``before``; returns how many."""
        with self._conn.transaction():
            cur = self._conn.execute(
                "DELETE FROM dead_letters WHERE received_at < to_timestamp(%s / 1e6)", (before,)
            )
        return cur.rowcount

    def count(self) -> int:
        with self._conn.transaction():
            row = self._conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._conn.close()


def add_dead_letters(
    conn: psycopg.Connection[tuple[Any, ...]],
    rows: Sequence[DeadLetterRow],
    persons: Sequence[str | None] | None = None,
    sizes: Sequence[int] | None = None,
) -> None:
    """Write dead letters inside the caller's transaction (the processor's batch).

    The raw text is capped (``events.dead_letters.capped``): its first part,
    size and hash are kept, so a flood of huge junk cannot fill the store.
    ``persons`` and ``sizes``, parallel to ``rows``: whom each names and the
    size of its whole raw input, for sealed rows (``seal_dead_letters``)."""
    named = persons if persons is not None else [None] * len(rows)
    with conn.cursor().copy(
        "COPY dead_letters (stage, source, line_no, event_id, field, reason, raw,"
        " raw_bytes, raw_sha256, person) FROM STDIN"
    ) as copy:
        for i, (row, person) in enumerate(zip(rows, named, strict=True)):
            kept, size, digest = capped(row[6])
            copy.write_row((*row[:6], kept, size if sizes is None else sizes[i], digest, person))


def seal_dead_letters(
    rows: Sequence[DeadLetterRow], keys: KeyRing
) -> tuple[list[DeadLetterRow], list[str | None], list[int]]:
    """Rows whose raw text is sealed (capped first: a sealed text cannot be
    cut), the person each names and the size of each whole raw input (the
    hash kept is the sealed text's: one of the plain text would let a guess
    be confirmed). One key lookup for the batch."""
    persons = [person_in_raw(row[6]) for row in rows]
    suppressed = keys.suppressed({p for p in persons if p is not None})
    ring = keys.keys_for({p or NO_PERSON for p in persons if p not in suppressed})
    sealed: list[DeadLetterRow] = []
    for row, person in zip(rows, persons, strict=True):
        raw = "" if person in suppressed else row[6][:RAW_KEEP]  # an erased person's: not kept
        text = seal_text(ring[person or NO_PERSON], raw) if raw else raw
        sealed.append((*row[:6], text))
    sizes = [len(row[6].encode("utf-8", errors="surrogatepass")) for row in rows]
    return sealed, persons, sizes


def append_entries(
    conn: psycopg.Connection[Any], stream: str, entries: Sequence[Entry], partitions: int
) -> AppendResult:
    """Append inside the caller's transaction: the partition rows stay locked
    until it commits, so a reader polling ``offset >= n`` never skips a row.
    The processor calls it in its batch transaction to publish triggers with
    the profiles that fired them; ``PostgresLog.append`` wraps it in its own."""
    table, id_col = _table(stream)
    by_partition: dict[int, list[Entry]] = defaultdict(list)
    seen: set[str] = set()
    duplicates: list[str] = []
    for entry in entries:
        if entry.record_id in seen:
            duplicates.append(entry.record_id)
            continue
        seen.add(entry.record_id)
        by_partition[partition_for(entry.key, partitions)].append(entry)
    parts = sorted(by_partition)
    cur = conn.cursor()
    heads: dict[int, int] = dict(
        cur.execute(
            "SELECT partition, head FROM log_partitions"
            " WHERE stream = %s AND partition = ANY(%s)"
            " ORDER BY partition FOR UPDATE",
            (stream, parts),
        ).fetchall()
    )
    existing = {
        str(r[0])
        for r in cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s)").format(
                sql.Identifier(id_col), sql.Identifier(table), sql.Identifier(id_col)
            ),
            (list(seen),),
        )
    }
    accepted = 0
    if stream == TOUCHPOINTS:
        columns = sql.SQL('partition, "offset", event_id, customer_id, type, occurred_at, payload')
    else:
        columns = sql.SQL(
            'partition, "offset", trigger_id, customer_id, rule_id, fired_at, payload'
        )
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)
    new_heads: list[tuple[int, int]] = []
    with cur.copy(copy_sql) as copy:
        for p in parts:
            head = int(heads[p])
            for entry in by_partition[p]:
                if entry.record_id in existing:
                    duplicates.append(entry.record_id)
                    continue
                copy.write_row(
                    (
                        p,
                        head,
                        entry.record_id,
                        entry.key,
                        entry.type,
                        entry.occurred_at,
                        entry.payload,
                    )
                )
                head += 1
                accepted += 1
            new_heads.append((head, p))
    cur.executemany(
        "UPDATE log_partitions SET head = %s WHERE stream = %s AND partition = %s",
        [(h, stream, p) for h, p in new_heads],
    )
    if accepted:
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, stream))
    return AppendResult(accepted, duplicates)


def trigger_filter(
    *,
    customer_id: str | None = None,
    rule_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> tuple[sql.Composable, list[object]]:
    """The WHERE condition (and its parameters) of a read of fired triggers,
    for the triggers stream and the outbox alike: both have these columns."""
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[object] = []
    for column, value in (
        ("customer_id = %s", customer_id),
        ("rule_id = %s", rule_id),
        ("fired_at >= %s", since),
        ("fired_at < %s", until),
    ):
        if value is not None:
            clauses.append(sql.SQL(column))
            params.append(value)
    return sql.SQL(" AND ").join(clauses), params
