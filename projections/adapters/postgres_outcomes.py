"""Outcomes in PostgreSQL: the counts behind ``projections.outcomes.report``,
and the delivery feedback channels send back.

Triggers per rule and arm come from the outbox (it keeps every trigger the
live rules fired, both arms, in either log mode), conversions from
``trigger_conversions`` (written by the processor in its batch transaction)
and feedback from ``trigger_feedback``. ``since`` filters by when the trigger
fired, so a conversion counts with the trigger it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from events.adapters.connection import connect
from events.errors import StorageError
from events.model import Micros
from projections.outcomes import ArmStats, Key

FeedbackRow = tuple[str, str, str, str, str, Micros]
"""(trigger_id, status, rule_id, arm, source, at)."""


def _where(
    rule_id: str | None, since: Micros | None, table: str | None = None
) -> tuple[sql.Composable, list[Any]]:
    def column(name: str) -> sql.Composable:
        return sql.Identifier(name) if table is None else sql.Identifier(table, name)

    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if rule_id is not None:
        clauses.append(sql.SQL("{} = %s").format(column("rule_id")))
        params.append(rule_id)
    if since is not None:
        clauses.append(sql.SQL("{} >= %s").format(column("fired_at")))
        params.append(since)
    return sql.SQL(" AND ").join(clauses), params


def read_outcomes(
    dsn: str, rule_id: str | None = None, since: Micros | None = None
) -> dict[Key, ArmStats]:
    """Per (rule, arm): triggers, conversions, revenue, time to convert, feedback."""
    out: dict[Key, ArmStats] = {}
    where, params = _where(rule_id, since)
    where_t, params_t = _where(rule_id, since, "o")
    try:
        with connect(dsn) as conn:
            for rule, arm, n in conn.execute(
                sql.SQL(
                    "SELECT rule_id, arm, count(*) FROM trigger_outbox"
                    " WHERE {} GROUP BY rule_id, arm"
                ).format(where),
                params,
            ):
                out.setdefault((rule, arm), ArmStats()).triggers = int(n)
            for rule, arm, n, revenue, mean, median in conn.execute(
                sql.SQL(
                    "SELECT rule_id, arm, count(*), coalesce(sum(value), 0),"
                    " avg(converted_at - fired_at),"
                    " percentile_cont(0.5) WITHIN GROUP (ORDER BY converted_at - fired_at)"
                    " FROM trigger_conversions WHERE {} GROUP BY rule_id, arm"
                ).format(where),
                params,
            ):
                stats = out.setdefault((rule, arm), ArmStats())
                stats.conversions = int(n)
                stats.revenue = float(revenue)
                stats.mean_time_to_convert = float(mean)
                stats.median_time_to_convert = float(median)
            for rule, arm, status, n in conn.execute(
                sql.SQL(
                    "SELECT f.rule_id, f.arm, f.status, count(*) FROM trigger_feedback f"
                    " JOIN trigger_outbox o USING (trigger_id) WHERE {}"
                    " GROUP BY f.rule_id, f.arm, f.status"
                ).format(where_t),
                params_t,
            ):
                out.setdefault((rule, arm), ArmStats()).feedback[status] = int(n)
    except psycopg.Error as exc:
        raise StorageError(f"reading the outcomes failed: {exc}") from None
    return out


def trigger_arm(conn: psycopg.Connection[Any], trigger_id: str) -> tuple[str, str] | None:
    """(rule_id, arm) of a fired trigger, None for an id never fired."""
    row = conn.execute(
        "SELECT rule_id, arm FROM trigger_outbox WHERE trigger_id = %s", (trigger_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def add_feedback(conn: psycopg.Connection[Any], rows: Sequence[FeedbackRow]) -> int:
    """Record feedback; a (trigger, status) already recorded is kept as it was,
    so a repeated report changes nothing. Returns how many were new."""
    new = 0
    for row in rows:
        cur = conn.execute(
            "INSERT INTO trigger_feedback (trigger_id, status, rule_id, arm, source, at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (trigger_id, status) DO NOTHING",
            row,
        )
        new += cur.rowcount
    return new
