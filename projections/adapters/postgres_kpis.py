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

from engage.database import connect
from engage.errors import StorageError
from projections.kpis import FLOWS, KpiDelta, report

Conn = psycopg.Connection[tuple[Any, ...]]


def write_kpis(conn: Conn, delta: KpiDelta) -> None:
    """Add one batch's deltas inside the caller's transaction."""
    cur = conn.cursor()
    if delta.flows:
        keys = sorted(k for k, row in delta.flows.items() if any(row))
        if keys:
            columns = [sql.Identifier(c) for c in FLOWS]
            arrays = [
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                *([delta.flows[k][i] for k in keys] for i in range(len(FLOWS))),
            ]
            casts = sql.SQL(", ").join(
                [sql.SQL("%s::int[]"), sql.SQL("%s::text[]"), sql.SQL("%s::text[]")]
                + [sql.SQL("%s::bigint[]")] * len(FLOWS)
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO kpi_flows (day, channel, stage, {cols})"
                    " SELECT * FROM unnest({casts}) ORDER BY 1, 2, 3"
                    " ON CONFLICT (day, channel, stage) DO UPDATE SET {sets}"
                ).format(
                    cols=sql.SQL(", ").join(columns),
                    casts=casts,
                    sets=sql.SQL(", ").join(
                        sql.SQL("{c} = kpi_flows.{c} + EXCLUDED.{c}").format(c=c) for c in columns
                    ),
                ),
                arrays,
            )
    active = sorted((k, n) for k, n in delta.active.items() if n)
    if active:
        cur.execute(
            "INSERT INTO kpi_active (grain, period, stage, customers)"
            " SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::bigint[])"
            " ORDER BY 1, 2, 3"
            " ON CONFLICT (grain, period, stage)"
            " DO UPDATE SET customers = kpi_active.customers + EXCLUDED.customers",
            (
                [k[0] for k, _ in active],
                [k[1] for k, _ in active],
                [k[2] for k, _ in active],
                [n for _, n in active],
            ),
        )
    stages = sorted((k, n) for k, n in delta.stages.items() if n)
    if stages:
        cur.execute(
            "INSERT INTO kpi_stage_changes (day, stage, change)"
            " SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[]) ORDER BY 1, 2"
            " ON CONFLICT (day, stage)"
            " DO UPDATE SET change = kpi_stage_changes.change + EXCLUDED.change",
            ([k[0] for k, _ in stages], [k[1] for k, _ in stages], [n for _, n in stages]),
        )
    fired = sorted((k, n) for k, n in delta.triggers.items() if n)
    if fired:
        cur.execute(
            "INSERT INTO kpi_triggers (day, rule_id, triggers)"
            " SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[]) ORDER BY 1, 2"
            " ON CONFLICT (day, rule_id)"
            " DO UPDATE SET triggers = kpi_triggers.triggers + EXCLUDED.triggers",
            ([k[0] for k, _ in fired], [k[1] for k, _ in fired], [n for _, n in fired]),
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
