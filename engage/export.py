"""Exports for analysts' tools: events, profiles or triggers as Parquet or CSV.

DuckDB writes the files (Parquet with types and compression, CSV with a
header): the rows are streamed to a newline-delimited JSON spool first, in
constant memory, and one ``COPY`` turns the spool into the output. Nested
values (properties, counts, recent touchpoints, trigger details) are kept as
JSON text columns, which every tool can read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from engage.errors import ConfigError, EngageError

FORMATS: Final = ("parquet", "csv")
KINDS: Final = ("events", "profiles", "triggers")

NESTED: Final = {
    "events": ("properties", "extra"),
    "profiles": ("counts_by_type", "counts_by_channel", "custom_counts", "recent_touchpoints"),
    "triggers": ("caused_by", "details"),
}
TIMES: Final = {
    "events": ("occurred_at",),
    "profiles": ("first_seen", "last_seen", "last_purchase_at", "first_purchase_at", "as_of"),
    "triggers": ("fired_at",),
}


def write_rows(
    kind: str,
    rows: Iterable[dict[str, Any]],
    out: Path,
    fmt: str,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` (dicts with the same keys) to ``out``; returns the row count."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not out.parent.is_dir():
        raise ConfigError(f"no such directory: {out.parent}")
    import duckdb

    count = 0
    columns: list[str] | None = None
    fd, spool_name = tempfile.mkstemp(prefix=f"engage-{kind}-", suffix=".jsonl", dir=out.parent)
    spool = Path(spool_name)
    try:
        with os.fdopen(fd, "wb") as file:
            for row in rows:
                if columns is None:
                    columns = list(row)
                file.write(orjson.dumps(row) + b"\n")
                count += 1
                if on_rows is not None and count % 5_000 == 0:
                    on_rows(count)
        if columns is None:
            raise EngageError(f"there are no {kind} to export")
        selected = ", ".join(_column(kind, c) for c in columns)
        options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
        with duckdb.connect() as db:
            db.execute(
                f"COPY (SELECT {selected} FROM read_json(?, format = 'newline_delimited',"
                f" sample_size = -1, columns = {_declared(kind, columns)})) TO ? ({options})",
                [str(spool), str(out)],
            )
    except duckdb.Error as exc:
        raise EngageError(f"writing {out} failed: {exc}") from None
    finally:
        spool.unlink(missing_ok=True)
    if on_rows is not None:
        on_rows(count)
    return count


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(kind: str, name: str) -> str:
    """Times become TIMESTAMP (UTC); JSON text stays JSON."""
    if name in TIMES[kind]:
        return f"CAST(replace({_quote(name)}, 'Z', '') AS TIMESTAMP) AS {_quote(name)}"
    return _quote(name)


def _declared(kind: str, columns: list[str]) -> str:
    """The read_json column map: nested values as JSON, times as text to cast,
    everything else as the JSON reader types it."""
    parts = []
    for name in columns:
        if name in NESTED[kind]:
            kind_type = "JSON"
        elif name in TIMES[kind]:
            kind_type = "VARCHAR"
        else:
            kind_type = _TYPES.get(name, "VARCHAR")
        parts.append(f"{_literal(name)}: '{kind_type}'")
    return "{" + ", ".join(parts) + "}"


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


_TYPES: Final = {
    "partition": "INTEGER",
    "offset": "BIGINT",
    "rule_version": "INTEGER",
    "event_count": "BIGINT",
    "order_count": "BIGINT",
    "email_sent": "BIGINT",
    "email_opened": "BIGINT",
    "email_clicked": "BIGINT",
    "survey_count": "INTEGER",
    "support_cases": "INTEGER",
    "open_support_cases": "INTEGER",
    "nps_last": "INTEGER",
    "csat_last": "INTEGER",
    "subscribed": "BOOLEAN",
    "lifetime_spend": "DOUBLE",
    "average_order_value": "DOUBLE",
    "open_rate": "DOUBLE",
    "click_rate": "DOUBLE",
    "nps_average": "DOUBLE",
    "csat_average": "DOUBLE",
    "engagement_score": "DOUBLE",
    "refund_total": "DOUBLE",
}


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
