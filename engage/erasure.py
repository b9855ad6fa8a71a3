"""Erasure (GDPR art. 17, LGPD art. 18): ``engage privacy erase`` and
``DELETE /v1/customers/{id}``.

The steps, each safe to run again, so an erasure killed at any instant
(``kill -9``) is completed by a rerun or by the next ``engage`` command
(``resume_erasures``):

1. record the erasure (its receipt) and suppress the person: their new
   events are refused from now on;
2. destroy the person's key: every sealed field of theirs, on the log, a
   Kafka topic or a backup, is unreadable from now on;
3. sweep every table of every schema (live, replay reports, kept versions)
   that names the person: delete profiles, timers, identity rows, dead
   letters, seen-id rows, webhook payloads and attempt logs; shred the
   details of their triggers (the triggers stream and outboxes keep the
   readable rest: rule, kind, time, ids); leave KPI totals as they are;
4. append ``subject_erased`` to the log, so the processor and every replay
   forget the person at that position (``consumers.pipeline``);
5. mark the receipt complete. It lists every store checked.

An advisory lock per person keeps two processes from sweeping at once.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import orjson
import psycopg
from psycopg import sql

from engage.database import connect
from engage.errors import EngageError
from events.codec import CodecError, TriggerCodec
from events.model import SubjectErased
from events.partitioning import partition_for
from events.subject_erased import erased_entry
from projections.person_history import history_keys

if TYPE_CHECKING:
    from engage.runtime import Engine

Conn = psycopg.Connection[tuple[Any, ...]]

KEPT_LOG: Final = frozenset({"touchpoints"})
"""The log: immutable; the person's fields there are sealed with the destroyed key."""
SHREDDED: Final = frozenset({"trigger_log", "trigger_outbox"})
"""Triggers: their details are replaced, the readable rest kept."""
PRIVACY: Final = frozenset({"privacy_erasures", "privacy_suppressed", "privacy_keys"})
"""The erasure's own records (and the keys, destroyed in step 2)."""
KPIS: Final = ("kpi_flows", "kpi_active", "kpi_stage_changes", "kpi_triggers")
SHRED_DETAILS: Final = {"erased": True}
LOCK_SPACE: Final = 4242014


@dataclass
class Receipt:
    erasure_id: str
    person: str
    reason: str
    requested_at: str = ""
    completed_at: str | None = None
    stores: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "person": self.person,
            "reason": self.reason,
            "requested_at": self.requested_at,
            "completed_at": self.completed_at,
            "stores": self.stores,
        }

    def note(self, store: str, action: str, rows: int) -> None:
        """Add a store's result; a resumed erasure adds to what the first run
        did (records kept are counted, not added)."""
        for item in self.stores:
            if item["store"] == store:
                item["rows"] = rows if action.startswith("kept") else item["rows"] + rows
                item["action"] = action
                return
        self.stores.append({"store": store, "action": action, "rows": rows})


_TIME: Final = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def erase(engine: Engine, person: str, reason: str) -> Receipt:
    """Erase ``person`` (customer_id, else anonymous_id); idempotent and resumable."""
    if not person or len(person) > 128:
        raise EngageError("the id to erase must be 1 to 128 characters")
    if not reason.strip():
        raise EngageError("--reason is required: say why (the request, its reference)")
    # a merged person's events sit under every key they were appended under,
    # each sealed with that key's own person key: erase them all
    found = engine.identity.find(person)
    linked = [] if found is None else sorted(history_keys(found) - {person})
    with connect(engine.dsn, autocommit=True) as conn:
        with _person_lock(conn, person, wait=True):
            receipt = _open(conn, person, reason)
            _run(engine, conn, receipt)
        for other in linked:
            with _person_lock(conn, other, wait=True):
                _run(engine, conn, _open(conn, other, f"{reason} (linked to {person})"))
    if linked:
        receipt.note(
            "identity: linked identifiers", "erased too: " + ", ".join(linked), len(linked)
        )
    return receipt


def resume_erasures(engine: Engine) -> list[Receipt]:
    """Complete every erasure that an earlier process started and did not finish."""
    with connect(engine.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT erasure_id, person FROM privacy_erasures WHERE completed_at IS NULL"
        ).fetchall()
        done: list[Receipt] = []
        for erasure_id, person in rows:
            with _person_lock(conn, str(person), wait=False) as locked:
                if not locked:  # another process is on it right now
                    continue
                receipt = _load(conn, str(erasure_id))
                if receipt is None or receipt.completed_at is not None:
                    continue
                _run(engine, conn, receipt)
                done.append(receipt)
    return done


def receipts(conn: Conn, person: str) -> list[Receipt]:
    rows = conn.execute(
        "SELECT erasure_id FROM privacy_erasures WHERE person = %s ORDER BY requested_at",
        (person,),
    ).fetchall()
    return [r for (erasure_id,) in rows if (r := _load(conn, str(erasure_id))) is not None]


@contextmanager
def _person_lock(conn: Conn, person: str, *, wait: bool) -> Iterator[bool]:
    """A session advisory lock per person: released by the server when the
    process dies, so a killed erasure never blocks its resumption."""
    key = (LOCK_SPACE, hash_person(person))
    if wait:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
        locked = True
    else:
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
        locked = bool(row and row[0])
    try:
        yield locked
    finally:
        if locked:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def hash_person(person: str) -> int:
    """A stable 31-bit number for the advisory lock (Python's hash is salted)."""
    return zlib.crc32(person.encode("utf-8")) & 0x7FFFFFFF


def _open(conn: Conn, person: str, reason: str) -> Receipt:
    """Step 1: the unfinished erasure of this person, or a new one; suppressed."""
    with conn.transaction():
        row = conn.execute(
            "SELECT erasure_id FROM privacy_erasures WHERE person = %s AND completed_at IS NULL",
            (person,),
        ).fetchone()
        if row is None:
            erasure_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO privacy_erasures (erasure_id, person, reason) VALUES (%s, %s, %s)",
                (erasure_id, person, reason),
            )
        else:
            erasure_id = str(row[0])
        conn.execute(
            "INSERT INTO privacy_suppressed (person) VALUES (%s) ON CONFLICT DO NOTHING",
            (person,),
        )
    found = _load(conn, erasure_id)
    assert found is not None
    found.note("privacy_suppressed", "suppressed: new events are refused", 1)
    return found


def _load(conn: Conn, erasure_id: str) -> Receipt | None:
    row = conn.execute(
        sql.SQL(
            "SELECT erasure_id, person, reason, {}, {}, receipt FROM privacy_erasures"
            " WHERE erasure_id = %s"
        ).format(sql.SQL(_TIME.format("requested_at")), sql.SQL(_TIME.format("completed_at"))),
        (erasure_id,),
    ).fetchone()
    if row is None:
        return None
    stored = row[5] if isinstance(row[5], list) else []
    return Receipt(str(row[0]), str(row[1]), str(row[2]), str(row[3]), row[4], list(stored))


def _save(conn: Conn, receipt: Receipt, *, complete: bool = False) -> None:
    conn.execute(
        "UPDATE privacy_erasures SET receipt = %s,"
        " completed_at = CASE WHEN %s THEN now() ELSE completed_at END WHERE erasure_id = %s",
        (orjson.dumps(receipt.stores).decode(), complete, receipt.erasure_id),
    )


def _run(engine: Engine, conn: Conn, receipt: Receipt) -> None:
    person = receipt.person
    # step 2: crypto-shredding
    receipt.note("privacy_keys", "person key destroyed", engine.keys.destroy(person))
    _save(conn, receipt)
    # step 3: every table that names the person
    event_ids = _event_ids(engine, conn, person)
    with conn.transaction():
        _sweep(conn, person, event_ids, receipt)
        # a running processor holds profiles and timers in memory while its
        # token is on the partition: a new token makes it reload from here
        conn.execute(
            "UPDATE partition_writers SET writer = %s WHERE stream = 'touchpoints'"
            " AND partition = %s",
            (f"erasure:{receipt.erasure_id}", partition_for(person, engine.partitions)),
        )
        _save(conn, receipt)
    receipt.note(
        "identity_persons, identity_identifiers",
        "the person's identifiers and links deleted",
        engine.identity.forget(person),
    )
    _topics(engine, receipt)
    # step 4: on the log, after everything of the person's
    at = time.time_ns() // 1_000
    appended = engine.stream.append(
        "touchpoints", [erased_entry(SubjectErased(receipt.erasure_id, person, at))]
    )
    receipt.note(
        "log: subject_erased record", "appended" if appended.accepted else "already there", 1
    )
    with conn.transaction():
        _save(conn, receipt, complete=True)
    done = _load(conn, receipt.erasure_id)
    if done is not None:
        receipt.completed_at = done.completed_at
        receipt.requested_at = done.requested_at


def _event_ids(engine: Engine, conn: Conn, person: str) -> list[str]:
    """The ids of the person's events: seen-id rows name them."""
    if engine.kafka is None:
        rows = conn.execute(
            "SELECT event_id FROM touchpoints WHERE customer_id = %s", (person,)
        ).fetchall()
        return [str(r[0]) for r in rows]
    records = engine.kafka.customer_history(person)
    decoded = engine.codec.decode_many([r.payload for r in records])
    return [d.event_id for d in decoded if not isinstance(d, CodecError)]


def _tables(conn: Conn) -> dict[tuple[str, str], set[str]]:
    """(schema, table) -> the columns an erasure looks at, for every table."""
    rows = conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE'"
        " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND c.column_name IN ('customer_id', 'person', 'event_id', 'trigger_id')"
        " ORDER BY 1, 2"
    ).fetchall()
    found: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        found.setdefault((str(schema), str(table)), set()).add(str(column))
    return found


def _sweep(conn: Conn, person: str, event_ids: list[str], receipt: Receipt) -> None:
    tables = _tables(conn)
    trigger_ids: set[str] = set()
    for (schema, table), columns in tables.items():
        if table in SHREDDED and "customer_id" in columns:
            trigger_ids.update(_shred_triggers(conn, schema, table, person, receipt))
    for (schema, table), columns in tables.items():
        name = f"{schema}.{table}"
        target = sql.Identifier(schema, table)
        if table in SHREDDED or table in PRIVACY:
            continue
        if table in KEPT_LOG:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE customer_id = %s").format(target),
                (person,),
            ).fetchone()
            kept = int(row[0]) if row else 0
            receipt.note(name, "kept: personal fields sealed with the destroyed key", kept)
            continue
        value: str | list[str]
        if "customer_id" in columns:
            where, value = sql.SQL("customer_id = %s"), person
        elif "person" in columns:
            where, value = sql.SQL("person = %s"), person
        elif "trigger_id" in columns:
            where, value = sql.SQL("trigger_id = ANY(%s)"), sorted(trigger_ids)
        else:  # event_id: _tables lists only tables with one of these columns
            where, value = sql.SQL("event_id = ANY(%s)"), event_ids
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(target, where), (value,)
        ).rowcount
        receipt.note(name, "deleted", deleted)
    for table in KPIS:
        receipt.note(f"public.{table}", "kept: aggregate totals, no person named", 0)


def _shred_triggers(
    conn: Conn, schema: str, table: str, person: str, receipt: Receipt
) -> list[str]:
    """Replace the details of the person's triggers; return their ids."""
    codec = TriggerCodec()
    target = sql.Identifier(schema, table)
    rows = conn.execute(
        sql.SQL("SELECT trigger_id, payload FROM {} WHERE customer_id = %s").format(target),
        (person,),
    ).fetchall()
    shredded = 0
    for trigger_id, payload in rows:
        decoded = codec.decode_many([bytes(payload)])[0]
        if isinstance(decoded, CodecError):
            continue
        if decoded.details == SHRED_DETAILS:
            continue
        decoded = replace(decoded, details=dict(SHRED_DETAILS))
        conn.execute(
            sql.SQL("UPDATE {} SET payload = %s WHERE trigger_id = %s").format(target),
            (codec.encode(decoded), trigger_id),
        )
        shredded += 1
    receipt.note(f"{schema}.{table}", "trigger details shredded", shredded)
    return [str(r[0]) for r in rows]


def _topics(engine: Engine, receipt: Receipt) -> None:
    """Kafka topics cannot be rewritten: what is on them is sealed."""
    if engine.kafka is None:
        return
    prefix = engine.settings.kafka_topic_prefix
    receipt.note(f"kafka:{prefix}.touchpoints", "kept: sealed with the destroyed key", 0)
    receipt.note(f"kafka:{prefix}.dlq", "kept: raw text sealed with the destroyed key", 0)
    receipt.note(
        f"kafka:{prefix}.triggers",
        "kept: a topic cannot be rewritten; trigger details hold ids and amounts only",
        0,
    )
