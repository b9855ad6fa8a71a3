"""KPI facts on PostgreSQL: additive upserts in the batch transaction, and the reader.

Writes only add: each batch's ``KpiDelta`` is upserted as ``column = column +
EXCLUDED.column``, in key order, so two partition-parallel workers that touch
the same day rows wait for each other's commit instead of deadlocking.

``read_kpis`` is what the CLI and the HTTP API call: it reads the stored facts
(small: one row per day, channel and stage) and leaves the rollup to the pure
``projections.kpis.report``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from events.adapters.connection import connect
from events.errors import StorageError
from projections.kpis import FLOWS, KpiDelta, report

Conn = psycopg.Connection[tuple[Any, ...]]


def _add(
    cur: psycopg.Cursor[tuple[Any, ...]],
    table: str,
    keys: list[tuple[str, str]],
    values: list[str],
    rows: list[tuple[tuple[Any, ...], tuple[int, ...]]],
) -> None:
    """Upsert ``rows`` of (key tuple, value tuple) into ``table``, adding the
    values to what is there; ``keys`` are (column, SQL array type). Sorted by
    key, so concurrent writers lock the rows in one order."""
    if not rows:
        return
    rows.sort()
    key_cols = [sql.Identifier(c) for c, _ in keys]
    value_cols = [sql.Identifier(c) for c in values]
    types = [kind for _, kind in keys] + ["bigint"] * len(values)
    casts = [sql.SQL("%s::{}[]").format(sql.SQL(kind)) for kind in types]
    arrays = [[k[i] for k, _ in rows] for i in range(len(keys))] + [
        [v[i] for _, v in rows] for i in range(len(values))
    ]
    cur.execute(
        sql.SQL(
            "INSERT INTO {table} ({cols}) SELECT * FROM unnest({casts}) ORDER BY {order}"
            " ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        ).format(
            table=sql.Identifier(table),
            cols=sql.SQL(", ").join(key_cols + value_cols),
            casts=sql.SQL(", ").join(casts),
            order=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(keys))),
            keys=sql.SQL(", ").join(key_cols),
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = {t}.{c} + EXCLUDED.{c}").format(c=c, t=sql.Identifier(table))
                for c in value_cols
            ),
        ),
        arrays,
    )


def write_kpis(conn: Conn, delta: KpiDelta) -> None:
    """Add one batch's deltas inside the caller's transaction."""
    cur = conn.cursor()
    _add(
        cur,
        "kpi_flows",
        [("day", "int"), ("channel", "text"), ("stage", "text")],
        list(FLOWS),
        [(k, tuple(row)) for k, row in delta.flows.items() if any(row)],
    )
    _add(
        cur,
        "kpi_active",
        [("grain", "text"), ("period", "int"), ("stage", "text")],
        ["customers"],
        [(k, (n,)) for k, n in delta.active.items() if n],
    )
    _add(
        cur,
        "kpi_stage_changes",
        [("day", "int"), ("stage", "text")],
        ["change"],
        [(k, (n,)) for k, n in delta.stages.items() if n],
    )
    _add(
        cur,
        "kpi_triggers",
        [("day", "int"), ("rule_id", "text")],
        ["triggers"],
        [(k, (n,)) for k, n in delta.triggers.items() if n],
    )


def read_facts(conn: Conn, consumer: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored KPI fact and ``consumer``'s clock, in one snapshot (one transaction)."""
    flow_cols = sql.SQL(", ").join(sql.Identifier(c) for c in FLOWS)
    with conn.transaction():
        flows = conn.execute(
            sql.SQL("SELECT day, channel, stage, {} FROM kpi_flows").format(flow_cols)
        ).fetchall()
        active = conn.execute("SELECT grain, period, stage, customers FROM kpi_active").fetchall()
        stages = conn.execute("SELECT day, stage, change FROM kpi_stage_changes").fetchall()
        fired = conn.execute("SELECT day, rule_id, triggers FROM kpi_triggers").fetchall()
        row = conn.execute(
            "SELECT clock FROM processor_clock WHERE consumer = %s", (consumer,)
        ).fetchone()
    return {
        "flows": [(int(r[0]), str(r[1]), str(r[2]), [int(v) for v in r[3:]]) for r in flows],
        "active": [(str(g), int(p), str(s), int(n)) for g, p, s, n in active],
        "stages": [(int(d), str(s), int(n)) for d, s, n in stages],
        "triggers": [(int(d), str(r), int(n)) for d, r, n in fired],
        "clock": [] if row is None else [(int(row[0]),)],
    }


def read_kpis(dsn_or_conn: str | Conn, consumer: str, by: str = "week") -> dict[str, Any]:
    """The KPI report as plain JSON-able data (see ``projections.kpis.report``).

    Takes a DSN (opens and closes its own connection) or an open connection;
    ``consumer`` names the processor whose clock ends the periods
    (``consumers.pipeline.DEFAULT_CONSUMER``)."""
    own = isinstance(dsn_or_conn, str)
    conn = connect(dsn_or_conn) if isinstance(dsn_or_conn, str) else dsn_or_conn
    try:
        facts = read_facts(conn, consumer)
    except psycopg.Error as exc:
        raise StorageError(f"reading the KPIs failed: {exc}") from None
    finally:
        if own:
            conn.close()
    clock = facts["clock"][0][0] if facts["clock"] else None
    return report(by, clock, facts["flows"], facts["active"], facts["stages"], facts["triggers"])


def read_clv_rows(conn: Conn) -> list[tuple[Any, ...]]:
    """The few profile fields ``projections.clv`` needs, for every customer
    with a purchase (``ClvRow``), read out of the stored JSON by PostgreSQL."""
    try:
        with conn.transaction():
            return conn.execute(
                "SELECT (state->>'order_count')::int, (state->>'last_seen')::bigint,"
                " (state->>'first_purchase_at')::bigint, (state->>'reactivated_at')::bigint,"
                " (state->>'last_purchase_at')::bigint,"
                " CASE WHEN json_typeof(state->'purchase_days') = 'array'"
                "  THEN json_array_length(state->'purchase_days') END,"
                " (state->>'purchase_total')::float8,"
                " coalesce((state->>'first_day_total')::float8, 0)"
                " FROM profiles WHERE state->>'last_purchase_at' IS NOT NULL"
            ).fetchall()
    except psycopg.Error as exc:
        raise StorageError(f"reading the profiles for predicted CLV failed: {exc}") from None
