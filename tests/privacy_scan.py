"""Scans for personal data left readable: every column of every table, every
record of every topic. Shared by the privacy tests."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from engage.database import connect
from events.adapters.kafka import KafkaLog

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")


def scan_tables(dsn: str, needles: Iterable[str]) -> list[tuple[str, str]]:
    """(schema.table.column, needle) for every needle readable anywhere: every
    text, json or bytea column of every table in every schema."""
    found: list[tuple[str, str]] = []
    wanted = list(needles)
    with connect(dsn, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
            " FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE t.table_type = 'BASE TABLE'"
            " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND c.data_type = ANY(%s)",
            (list(TEXT_TYPES),),
        ).fetchall()
        assert columns, "the scan must see the tables"
        for schema, table, column, data_type in columns:
            target = sql.Identifier(schema, table)
            col = sql.Identifier(column)
            for needle in wanted:
                if data_type == "bytea":
                    query = sql.SQL("SELECT count(*) FROM {} WHERE position(%s IN {}) > 0")
                    value: str | bytes = needle.encode("utf-8")
                else:
                    query = sql.SQL("SELECT count(*) FROM {} WHERE strpos({}::text, %s) > 0")
                    value = needle
                row = conn.execute(query.format(target, col), (value,)).fetchone()
                if row and row[0]:
                    found.append((f"{schema}.{table}.{column}", needle))
    return found


def scan_topics(log: KafkaLog, needles: Iterable[str]) -> list[tuple[str, str]]:
    """(topic@partition:offset, needle) for every needle readable in any record
    (key or value) of the touchpoints, triggers and dlq topics."""
    found: list[tuple[str, str]] = []
    wanted = [n.encode("utf-8") for n in needles]
    total = 0
    for stream in ("touchpoints", "triggers", "dlq"):
        heads = log.heads(stream)
        positions = dict.fromkeys(heads, 0)
        while positions:
            records = log.read(stream, positions, 10_000)
            if not records:
                break
            for record in records:
                total += 1
                blob = record.payload + record.key.encode("utf-8")
                found.extend(
                    (f"{stream}@{record.partition}:{record.offset}", n.decode())
                    for n in wanted
                    if n in blob
                )
                positions[record.partition] = record.offset + 1
            positions = {p: o for p, o in positions.items() if o < heads[p]}
    assert total, "the scan must see records"
    return found
