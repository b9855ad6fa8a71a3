"""The profile store on PostgreSQL (psycopg 3).

Profiles are loaded with one ``= ANY`` query per batch and written with COPY
into a temporary table followed by one upsert, because per-row round trips
would cost more than the whole fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import sql

from events.adapters.connection import connect
from events.adapters.postgres import add_dead_letters, append_entries
from events.dead_letters import DeadLetterRow
from events.errors import StorageError
from events.log import TRIGGERS, Entry
from events.model import Micros, TriggerConverted, TriggerEvent
from projections.adapters.postgres_kpis import write_kpis
from projections.kpis import KpiDelta
from projections.predictions import Model, ModelParams
from projections.profile import Profile

Conn = psycopg.Connection[tuple[Any, ...]]


class PostgresUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self._temp_ready = False
        self._outbox_temp_ready = False

    def lock_offsets(self, consumer: str, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        parts = sorted(partitions)
        self._conn.execute(
            'INSERT INTO consumer_offsets (consumer, stream, partition, "offset")'
            " SELECT %s, %s, p, 0 FROM unnest(%s::int[]) AS p ON CONFLICT DO NOTHING",
            (consumer, stream, parts),
        )
        rows = self._conn.execute(
            'SELECT partition, "offset" FROM consumer_offsets'
            " WHERE consumer = %s AND stream = %s AND partition = ANY(%s)"
            " ORDER BY partition FOR UPDATE",
            (consumer, stream, parts),
        ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def save_offsets(self, consumer: str, stream: str, offsets: Mapping[int, int]) -> None:
        self._update_partitions('"offset" = v.value', consumer, stream, offsets)

    def _update_partitions(
        self,
        assignment: LiteralString,
        consumer: str,
        stream: str,
        values: Mapping[int, object],
        value_type: LiteralString = "bigint",
    ) -> None:
        """One UPDATE of the consumer's partition rows; ``assignment`` names
        the new value ``v.value`` (a constant column expression, never input),
        sent as an array of ``value_type``."""
        if not values:
            return
        parts = sorted(values)
        query = sql.SQL(
            "UPDATE consumer_offsets AS c SET {}"
            " FROM unnest(%s::int[], %s::{}[]) AS v(p, value)"
            " WHERE c.consumer = %s AND c.stream = %s AND c.partition = v.p"
        ).format(sql.SQL(assignment), sql.SQL(value_type))
        self._conn.execute(query, (parts, [values[p] for p in parts], consumer, stream))

    def _partition_column(
        self, column: LiteralString, consumer: str, stream: str, partitions: Iterable[int]
    ) -> list[tuple[int, Any]]:
        """(partition, value) of a column of the consumer's partition rows, where set."""
        query = sql.SQL(
            "SELECT partition, {} FROM consumer_offsets"
            " WHERE consumer = %s AND stream = %s AND partition = ANY(%s) AND {} IS NOT NULL"
        ).format(sql.SQL(column), sql.Identifier(column.split("::")[0]))
        rows = self._conn.execute(query, (consumer, stream, sorted(partitions))).fetchall()
        return [(int(p), value) for p, value in rows]

    def claim_partitions(
        self, consumer: str, stream: str, partitions: Iterable[int], writer: str
    ) -> bool:
        parts = sorted(partitions)
        if not parts:
            return True
        # every sub-statement sees the snapshot from before the upsert
        row = self._conn.execute(
            "WITH prev AS (SELECT writer FROM partition_writers"
            "   WHERE consumer = %(c)s AND stream = %(s)s AND partition = ANY(%(p)s)),"
            " claim AS (INSERT INTO partition_writers (consumer, stream, partition, writer)"
            "   SELECT %(c)s, %(s)s, p, %(w)s FROM unnest(%(p)s::int[]) AS p"
            "   ON CONFLICT (consumer, stream, partition) DO UPDATE SET writer = EXCLUDED.writer"
            "   WHERE partition_writers.writer <> EXCLUDED.writer)"
            " SELECT count(*) FROM prev WHERE writer = %(w)s",
            {"c": consumer, "s": stream, "p": parts, "w": writer},
        ).fetchone()
        return row is not None and int(row[0]) == len(parts)

    def load_profiles(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        if not customer_ids:
            return {}
        rows = self._conn.execute(
            "SELECT customer_id, state::text FROM profiles WHERE customer_id = ANY(%s)",
            (list(customer_ids),),
        ).fetchall()
        return {cid: Profile.from_state(orjson.loads(state)) for cid, state in rows}

    def save_profiles(self, profiles: Sequence[Profile]) -> None:
        if not profiles:
            return
        if not self._temp_ready:
            self._conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS profiles_in"
                " (customer_id text, state json, last_seen bigint) ON COMMIT DELETE ROWS"
            )
            self._temp_ready = True
        cur = self._conn.cursor()
        with cur.copy("COPY profiles_in (customer_id, state, last_seen) FROM STDIN") as copy:
            for p in profiles:
                copy.write_row((p.customer_id, orjson.dumps(p).decode(), p.last_seen))
        cur.execute(
            "INSERT INTO profiles (customer_id, state, last_seen, updated_at)"
            " SELECT customer_id, state, last_seen, now() FROM profiles_in"
            " ON CONFLICT (customer_id) DO UPDATE SET state = EXCLUDED.state,"
            " last_seen = EXCLUDED.last_seen, updated_at = EXCLUDED.updated_at"
        )
        # a batch cut by an identity or erasure record saves twice in one transaction
        cur.execute("DELETE FROM profiles_in")

    def get_clock(self, consumer: str) -> Micros | None:
        row = self._conn.execute(
            "SELECT clock FROM processor_clock WHERE consumer = %s", (consumer,)
        ).fetchone()
        return None if row is None else int(row[0])

    def partition_clocks(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Micros]:
        rows = self._partition_column("clock", consumer, stream, partitions)
        return {p: int(c) for p, c in rows}

    def save_partition_clocks(
        self, consumer: str, stream: str, clocks: Mapping[int, Micros]
    ) -> None:
        self._update_partitions("clock = GREATEST(c.clock, v.value)", consumer, stream, clocks)

    def partition_models(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Model]:
        rows = self._partition_column("model::text", consumer, stream, partitions)
        return {p: Model.from_json(orjson.loads(m)) for p, m in rows}

    def save_partition_models(
        self, consumer: str, stream: str, models: Mapping[int, Model]
    ) -> None:
        texts = {p: orjson.dumps(m.to_json()).decode() for p, m in models.items()}
        self._update_partitions("model = v.value::json", consumer, stream, texts, "text")

    def repeat_buyers(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT customer_id FROM profiles WHERE CASE"
            " WHEN json_typeof(state->'purchase_days') = 'array'"
            " THEN json_array_length(state->'purchase_days') >= 2 ELSE false END"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def load_timers(self, partitions: Iterable[int]) -> list[tuple[str, str, Micros, int]]:
        rows = self._conn.execute(
            "SELECT customer_id, rule_id, due_at, partition FROM timers WHERE partition = ANY(%s)",
            (sorted(partitions),),
        ).fetchall()
        return [(str(c), str(r), int(d), int(p)) for c, r, d, p in rows]

    def save_clock(self, consumer: str, clock: Micros) -> None:
        self._conn.execute(
            "INSERT INTO processor_clock (consumer, clock) VALUES (%s, %s)"
            " ON CONFLICT (consumer) DO UPDATE SET clock = GREATEST(processor_clock.clock,"
            " EXCLUDED.clock)",
            (consumer, clock),
        )

    def dead_letter(self, rows: Sequence[DeadLetterRow]) -> None:
        if rows:
            add_dead_letters(self._conn, rows)

    def add_outbox(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], *, published: bool = False
    ) -> None:
        if not triggers:
            return
        # COPY then one insert: a replay writes tens of thousands per batch
        if not self._outbox_temp_ready:
            self._conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS outbox_in (trigger_id text, customer_id text,"
                " rule_id text, fired_at bigint, payload bytea, arm text) ON COMMIT DELETE ROWS"
            )
            self._outbox_temp_ready = True
        cur = self._conn.cursor()
        with cur.copy(
            "COPY outbox_in (trigger_id, customer_id, rule_id, fired_at, payload, arm) FROM STDIN"
        ) as copy:
            for t, payload in triggers:
                copy.write_row((t.trigger_id, t.customer_id, t.rule_id, t.fired_at, payload, t.arm))
        cur.execute(
            "INSERT INTO trigger_outbox"
            " (trigger_id, customer_id, rule_id, fired_at, payload, arm, published_at)"
            " SELECT trigger_id, customer_id, rule_id, fired_at, payload, arm,"
            " CASE WHEN %s THEN now() END FROM outbox_in"
            " ON CONFLICT (trigger_id) DO NOTHING",
            (published,),
        )

    def publish_triggers(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], partitions: int
    ) -> None:
        entries = [
            Entry(t.trigger_id, t.customer_id, payload, t.fired_at, t.rule_id)
            for t, payload in triggers
        ]
        if entries:
            append_entries(self._conn, TRIGGERS, entries, partitions)

    def save_timers(
        self, customer_ids: Sequence[str], timers: Sequence[tuple[str, str, Micros, int]]
    ) -> None:
        if customer_ids:
            self._conn.execute(
                "DELETE FROM timers WHERE customer_id = ANY(%s)", (list(customer_ids),)
            )
        if timers:
            with self._conn.cursor().copy(
                "COPY timers (customer_id, rule_id, due_at, partition) FROM STDIN"
            ) as copy:
                for row in timers:
                    copy.write_row(row)

    def save_kpis(self, delta: KpiDelta) -> None:
        write_kpis(self._conn, delta)

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        if not customer_ids:
            return
        ids = list(customer_ids)
        for statement in (
            "DELETE FROM profiles WHERE customer_id = ANY(%s)",
            "DELETE FROM timers WHERE customer_id = ANY(%s)",
            "DELETE FROM trigger_outbox WHERE published_at IS NULL AND customer_id = ANY(%s)",
        ):
            self._conn.execute(statement, (ids,))

    def forget_profiles(self, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            ids = list(customer_ids)
            self._conn.execute("DELETE FROM profiles WHERE customer_id = ANY(%s)", (ids,))
            self._conn.execute("DELETE FROM timers WHERE customer_id = ANY(%s)", (ids,))

    def save_conversions(self, conversions: Sequence[TriggerConverted]) -> None:
        if not conversions:
            return
        self._conn.cursor().executemany(
            "INSERT INTO trigger_conversions (trigger_id, rule_id, arm, customer_id, event_id,"
            " converted_at, fired_at, value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (trigger_id) DO NOTHING",
            [
                (c.trigger_id, c.rule_id, c.arm, c.customer_id, c.event_id, c.converted_at,
                 c.fired_at, c.value)
                for c in conversions
            ],
        )  # fmt: skip

    def claim_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self._conn.execute(
            "INSERT INTO seen_events (event_id) SELECT unnest(%s::text[])"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            (list(event_ids),),
        ).fetchall()
        return {str(r[0]) for r in rows}


class PostgresProjectionStore:
    def __init__(self, dsn: str) -> None:
        self._conn: Conn = connect(dsn)
        self._tx = PostgresUnitOfWork(self._conn)

    @contextmanager
    def transaction(self) -> Iterator[PostgresUnitOfWork]:
        try:
            with self._conn.transaction():
                yield self._tx
        except psycopg.Error as exc:
            raise StorageError(f"the profile store failed: {exc}") from None

    def get(self, customer_id: str) -> Profile | None:
        with self.transaction() as tx:
            return tx.load_profiles([customer_id]).get(customer_id)

    def clock(self, consumer: str) -> Micros | None:
        with self.transaction() as tx:
            return tx.get_clock(consumer)

    def offsets(self, consumer: str, stream: str) -> dict[int, int]:
        with self._conn.transaction():
            rows = self._conn.execute(
                'SELECT partition, "offset" FROM consumer_offsets'
                " WHERE consumer = %s AND stream = %s",
                (consumer, stream),
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def model(self, consumer: str) -> Model | None:
        with self.transaction():
            row = self._conn.execute(
                "SELECT model::text FROM consumer_offsets"
                " WHERE consumer = %s AND model IS NOT NULL"
                " ORDER BY (model->>'version')::bigint DESC, stream, partition LIMIT 1",
                (consumer,),
            ).fetchone()
        return None if row is None else Model.from_json(orjson.loads(row[0]))

    def model_as_of(self, at: Micros) -> Model | None:
        with self.transaction():
            row = self._conn.execute(
                "SELECT version, as_of, params::text FROM model_fits WHERE as_of <= %s"
                " ORDER BY version DESC LIMIT 1",
                (at,),
            ).fetchone()
        if row is None:
            return None
        return Model(int(row[0]), ModelParams.from_json(orjson.loads(row[2])), int(row[1]))

    def consumers(self) -> list[tuple[str, str, int]]:
        """(consumer, stream, records consumed) for every consumer that committed."""
        with self._conn.transaction():
            rows = self._conn.execute(
                'SELECT consumer, stream, sum("offset") FROM consumer_offsets'
                " GROUP BY consumer, stream ORDER BY consumer, stream"
            ).fetchall()
        return [(str(c), str(s), int(n)) for c, s, n in rows]

    def clocks(self) -> dict[str, Micros]:
        with self._conn.transaction():
            rows = self._conn.execute("SELECT consumer, clock FROM processor_clock").fetchall()
        return {str(c): int(t) for c, t in rows}

    def count(self) -> int:
        with self._conn.transaction():
            row = self._conn.execute("SELECT count(*) FROM profiles").fetchone()
        return 0 if row is None else int(row[0])

    def conversions(self) -> list[TriggerConverted]:
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT trigger_id, rule_id, arm, customer_id, event_id, converted_at, fired_at,"
                " value FROM trigger_conversions ORDER BY trigger_id"
            ).fetchall()
        return [TriggerConverted(*r) for r in rows]

    def sample_ids(self, limit: int) -> list[str]:
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT customer_id FROM profiles ORDER BY customer_id LIMIT %s", (limit,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def search(self, text: str, limit: int) -> list[tuple[str, int | None]]:
        """(customer_id, last_seen) of customers whose id starts with ``text``
        (case-insensitive), for the dashboard's search box."""
        pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT customer_id, last_seen FROM profiles WHERE customer_id ILIKE %s"
                " ORDER BY customer_id LIMIT %s",
                (pattern, limit),
            ).fetchall()
        return [(str(c), None if t is None else int(t)) for c, t in rows]

    def trigger_counts(self) -> dict[str, int]:
        """Triggers fired per rule, from the outbox (kept in PostgreSQL whichever
        log carries the triggers stream)."""
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT rule_id, count(*) FROM trigger_outbox GROUP BY rule_id ORDER BY rule_id"
            ).fetchall()
        return {str(r): int(n) for r, n in rows}

    def trigger_histogram(self, bucket: Micros, since: Micros | None) -> list[tuple[str, int, int]]:
        """(rule_id, bucket start, triggers) per rule per ``bucket`` of fired_at."""
        with self._conn.transaction():
            rows = self._conn.execute(
                "SELECT rule_id, (fired_at / %s) * %s AS b, count(*) FROM trigger_outbox"
                " WHERE fired_at >= %s GROUP BY rule_id, b ORDER BY b, rule_id",
                (bucket, bucket, since if since is not None else -(1 << 62)),
            ).fetchall()
        return [(str(r), int(b), int(n)) for r, b, n in rows]

    def close(self) -> None:
        self._conn.close()
