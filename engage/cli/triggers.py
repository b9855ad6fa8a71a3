"""``engage triggers``: what the rules fired, for marketing to act on."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, out, parse_time_option
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.log import TRIGGERS, LogRecord
from events.model import TriggerEvent
from events.timefmt import format_iso


def _decode(codec: TriggerCodec, records: list[LogRecord]) -> list[TriggerEvent]:
    return [
        t for t in codec.decode_many([r.payload for r in records]) if not isinstance(t, CodecError)
    ]


def _matches(t: TriggerEvent, customer: str | None, rule: str | None, since: int | None) -> bool:
    return (
        (customer is None or t.customer_id == customer)
        and (rule is None or t.rule_id == rule)
        and (since is None or t.fired_at >= since)
    )


@app.command()
def triggers(
    json: Annotated[bool, typer.Option("--json", help="One trigger JSON object per line.")] = False,
    customer: Annotated[str | None, typer.Option(help="Only this customer_id.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule id.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only triggers fired at or after this ISO 8601 instant.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep printing new triggers as they fire (Ctrl-C).")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many (before --follow).")] = None,
) -> None:
    """List fired triggers (thank-yous, thresholds, churn risk, win-back, feedback requests)."""
    since_us = parse_time_option(since, "--since")
    codec = TriggerCodec()
    with Engine.open() as engine:
        found = _decode(codec, engine.log.find_triggers(customer, rule, since_us, limit))
        if json:
            for t in found:
                sys.stdout.write(orjson.dumps(trigger_json(t)).decode() + "\n")
        else:
            table = Table(title=f"{len(found)} triggers")
            for column in ("fired_at", "rule", "kind", "customer", "caused_by", "details"):
                table.add_column(column)
            for t in found:
                table.add_row(
                    format_iso(t.fired_at),
                    t.rule_id,
                    t.kind,
                    t.customer_id,
                    ", ".join(t.caused_by),
                    ", ".join(f"{k}={v}" for k, v in t.details.items()),
                )
            out.print(table)
        if not follow:
            return
        sys.stdout.flush()
        positions = engine.log.heads(TRIGGERS)
        try:
            while True:
                records = engine.log.read(TRIGGERS, positions, 1000)
                if not records:
                    engine.log.wait(1.0)
                    continue
                for r in records:
                    positions[r.partition] = r.offset + 1
                for t in _decode(codec, records):
                    if _matches(t, customer, rule, since_us):
                        line = (
                            orjson.dumps(trigger_json(t)).decode()
                            if json
                            else (f"{format_iso(t.fired_at)} {t.rule_id} {t.kind} {t.customer_id}")
                        )
                        sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            return
