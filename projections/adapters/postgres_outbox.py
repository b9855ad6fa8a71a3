"""The newest fired triggers, from the transactional outbox, for the
dashboard's "Who to contact now" list.

The outbox (``trigger_outbox``) is in PostgreSQL whichever log carries the
triggers stream, and keeps every trigger the live rules fired, so this one
query serves the embedded and the Kafka mode alike, newest first, without
reading the triggers topic from its start.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from psycopg import sql

from events.adapters.connection import connect
from events.adapters.postgres import trigger_filter
from events.errors import StorageError
from events.model import Micros


def newest_triggers(
    dsn: str,
    rule_id: str | None = None,
    since: Micros | None = None,
    until: Micros | None = None,
    chunk: int = 500,
    *,
    customer_id: str | None = None,
    arm: str | None = None,
) -> Iterator[list[bytes]]:
    """Trigger payloads (Avro, as on the stream) fired in ``[since, until)``,
    newest first, ``chunk`` at a time; stop iterating to stop reading.
    ``arm``: only that arm (the outbox keeps both; the stream only treatment)."""
    where, params = trigger_filter(
        customer_id=customer_id, rule_id=rule_id, since=since, until=until
    )
    if arm is not None:
        where = sql.SQL("{} AND arm = %s").format(where)
        params = [*params, arm]
    query = sql.SQL(
        "SELECT payload FROM trigger_outbox WHERE {} ORDER BY fired_at DESC, trigger_id DESC"
    ).format(where)
    try:
        with connect(dsn) as conn, conn.cursor(name="newest_triggers") as cur:
            cur.itersize = chunk
            cur.execute(query, params)
            while rows := cur.fetchmany(chunk):
                yield [bytes(r[0]) for r in rows]
    except psycopg.Error as exc:
        raise StorageError(f"reading the fired triggers failed: {exc}") from None
