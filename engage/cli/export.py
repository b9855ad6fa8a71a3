"""``engage export``: events, profiles or triggers as Parquet or CSV for analysts' tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from consumers.pipeline import DEFAULT_CONSUMER
from engage.cli.app import RateBar, app, out
from engage.errors import ConfigError
from engage.export import FORMATS, KINDS, chunks, write_rows
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.log import TOUCHPOINTS, TRIGGERS, read_stream
from events.timefmt import format_iso_exact
from projections.customer360 import customer_360


def _events(engine: Engine) -> Iterator[dict[str, Any]]:
    for records in read_stream(engine.stream, TOUCHPOINTS):
        decoded = engine.codec.decode_many([r.payload for r in records])
        for record, e in zip(records, decoded, strict=True):
            if isinstance(e, CodecError):
                continue  # undecodable records are in the dead-letter store
            yield {
                "event_id": e.event_id,
                "customer_id": e.customer_id,
                "anonymous_id": e.anonymous_id,
                "type": e.type,
                "occurred_at": format_iso_exact(e.occurred_at),  # the exact instant
                "channel": e.channel,
                "source": e.source,
                "properties": e.properties,
                "extra": e.extra,
                "partition": record.partition,
                "offset": record.offset,
            }


def _triggers(engine: Engine) -> Iterator[dict[str, Any]]:
    codec = TriggerCodec()
    for records in read_stream(engine.stream, TRIGGERS):
        for t in codec.decode_many([r.payload for r in records]):
            if not isinstance(t, CodecError):
                yield trigger_json(t)


def _profiles(engine: Engine) -> Iterator[dict[str, Any]]:
    clock = engine.store.clock(DEFAULT_CONSUMER)
    model = engine.store.model(DEFAULT_CONSUMER)
    for ids in chunks(engine.store.sample_ids(1 << 62), 5_000):
        with engine.store.transaction() as tx:
            found = tx.load_profiles(ids)
        for customer_id in ids:
            p = found.get(customer_id)
            if p is not None:
                yield customer_360(p, clock if clock is not None else (p.last_seen or 0), model)


@app.command()
def export(
    what: Annotated[str, typer.Argument(metavar="events|profiles|triggers", help="What to write.")],
    out_path: Annotated[Path, typer.Option("--out", help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet (default) or csv.")] = "parquet",
) -> None:
    """Write every event, profile (the customer-360 JSON, judged at the processor's
    clock) or trigger to a Parquet or CSV file, for DuckDB, pandas, Spark or a
    spreadsheet. Nested values (properties, counts, recent touchpoints, trigger
    details) are JSON text columns; times are UTC timestamps.
    """
    if what not in KINDS:
        raise ConfigError(f"export what? one of {', '.join(KINDS)}, got {what!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with Engine.open() as engine:
        if what == "events":
            total = sum(engine.stream.heads(TOUCHPOINTS).values())
            rows = _events(engine)
        elif what == "triggers":
            total = sum(engine.stream.heads(TRIGGERS).values())
            rows = _triggers(engine)
        else:
            total = engine.store.count()
            rows = _profiles(engine)
        with RateBar(f"exporting {what}", total) as bar:
            count = write_rows(what, rows, out_path, fmt, lambda n: bar.update(n))
    out.print(f"wrote {count:,} {what} to {out_path} ({fmt})")
