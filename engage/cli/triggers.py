"""``engage triggers``: what the rules fired, for marketing to act on."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, err, out, parse_time_option, plural
from engage.cli.safe_text import printable
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.log import TRIGGERS, LogRecord
from events.model import TriggerEvent
from events.ports import CustomerHistory, TriggerQuery
from events.timefmt import format_iso
from projections.adapters.postgres_outbox import newest_triggers
from rules.arms import ARMS, TREATMENT


def _decode(codec: TriggerCodec, records: list[LogRecord]) -> list[TriggerEvent]:
    return [
        t for t in codec.decode_many([r.payload for r in records]) if not isinstance(t, CodecError)
    ]


class RecentIds:
    """Trigger ids seen lately: a repeat on the stream is the same trigger
    (ids are deterministic), so it is shown once. Bounded, oldest forgotten."""

    def __init__(self, keep: int = 1_000_000) -> None:
        self._ids: dict[str, None] = {}
        self._keep = keep

    def add(self, trigger_id: str) -> bool:
        """True when the id is new."""
        if trigger_id in self._ids:
            return False
        self._ids[trigger_id] = None
        if len(self._ids) > self._keep:
            del self._ids[next(iter(self._ids))]
        return True


def kafka_triggers(
    log: CustomerHistory,
    codec: TriggerCodec,
    customer: str | None,
    rule: str | None,
    since: int | None,
    limit: int | None,
) -> list[TriggerEvent]:
    """Every matching trigger on the Kafka triggers topic, repeats dropped,
    ordered as the PostgreSQL listing is: by fired_at, then trigger_id
    (``KafkaLog.find_triggers``)."""
    return _decode(codec, log.find_triggers(TriggerQuery(customer, rule, since, limit)))


TABLE_LIMIT = 50
"""The table shows this many by default: the demo alone fires about 13,600."""


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
    arm: Annotated[
        str,
        typer.Option(
            help="treatment (delivered: the default), control (held out, never delivered) or all.",
        ),
    ] = TREATMENT,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"At most this many (before --follow). The table shows the latest "
            f"{TABLE_LIMIT} by default, or the first {TABLE_LIMIT} from --since; "
            "--json prints every one unless --limit is given.",
        ),
    ] = None,
) -> None:
    """List fired triggers (thank-yous, thresholds, churn risk, win-back, feedback requests)."""
    since_us = parse_time_option(since, "--since")
    if arm not in (*ARMS, "all"):
        raise typer.BadParameter(
            f"expected treatment, control or all, got {arm!r}", param_hint="--arm"
        )
    if arm != TREATMENT and follow:
        raise typer.BadParameter(
            "held-out triggers are never on the stream to follow", param_hint="--arm"
        )
    codec = TriggerCodec()
    wanted = limit if (limit is not None or json) else TABLE_LIMIT
    # without --since, a page is the latest triggers; from --since, the first ones
    newest = since_us is None and wanted is not None
    with Engine.open() as engine:
        asked = None if wanted is None else wanted + 1  # one more: is there a next page?
        if arm != TREATMENT:
            found = _outbox(engine, codec, customer, rule, since_us, None if arm == "all" else arm)
            if asked is not None:
                found = found[-asked:] if newest else found[:asked]
        elif engine.kafka is None:
            query = TriggerQuery(customer, rule, since_us, asked)
            records = engine.log.find_triggers(query, newest_first=newest)
            found = _decode(codec, records)
        else:
            found = kafka_triggers(engine.kafka, codec, customer, rule, since_us, None)
            if asked is not None:
                found = found[-asked:] if newest else found[:asked]
        more = wanted is not None and len(found) > wanted
        if more:
            found = found[1:] if newest else found[:-1]
        if rule is not None and not found:
            _unknown_rule_hint(engine, rule)
        if json:
            for t in found:
                sys.stdout.write(orjson.dumps(trigger_json(t)).decode() + "\n")
        else:
            which = "latest " if newest and more else ("first " if more else "")
            table = Table(title=f"{which}{plural(len(found), 'trigger')}")
            columns = ["fired_at", "rule", "kind", "customer", "caused_by", "details"]
            if arm != TREATMENT:
                columns.append("arm")
            for column in columns:
                table.add_column(column)
            for t in found:
                cells = [
                    format_iso(t.fired_at),
                    t.rule_id,
                    t.kind,
                    t.customer_id,
                    ", ".join(t.caused_by),
                    ", ".join(f"{k}={v}" for k, v in t.details.items()),
                ]
                table.add_row(*cells, *([t.arm] if arm != TREATMENT else []))
            out.print(table)
            if more:
                err.print(
                    "more: --limit N for a longer page, --since TS to start from an instant, "
                    "--json for every one",
                    markup=False,
                )
        if not follow:
            return
        sys.stdout.flush()
        _follow(engine, codec, json, customer, rule, since_us)


def _outbox(
    engine: Engine,
    codec: TriggerCodec,
    customer: str | None,
    rule: str | None,
    since: int | None,
    arm: str | None,
) -> list[TriggerEvent]:
    """Both arms live in the outbox (the stream holds only what is delivered),
    in either log mode; ordered as the stream listing is."""
    found: list[TriggerEvent] = []
    for payloads in newest_triggers(engine.dsn, rule, since, customer_id=customer, arm=arm):
        found.extend(t for t in codec.decode_many(payloads) if not isinstance(t, CodecError))
    found.sort(key=lambda t: (t.fired_at, t.trigger_id))
    return found


def _unknown_rule_hint(engine: Engine, rule: str) -> None:
    """``--rule`` with an id nothing fired under: say so, and list the ids that
    did fire (a typo otherwise looks exactly like a quiet rule)."""
    fired = engine.store.trigger_counts()
    if rule in fired:
        return
    loaded = [r.id for r in engine.rules.rules] if engine.rules is not None else []
    known = sorted(set(fired) | set(loaded))
    err.print(
        f"no trigger was ever fired by a rule {rule!r}; rule ids: {', '.join(known) or 'none'}",
        markup=False,
    )


def _follow(
    engine: Engine,
    codec: TriggerCodec,
    json: bool,
    customer: str | None,
    rule: str | None,
    since_us: int | None,
) -> None:
    log = engine.stream
    wanted = TriggerQuery(customer, rule, since_us)
    positions = log.heads(TRIGGERS)
    seen = RecentIds()  # the relay may re-append a trigger after a crash
    try:
        while True:
            records = log.read(TRIGGERS, positions, 1000)
            if not records:
                log.wait(1.0)
                continue
            for r in records:
                positions[r.partition] = r.offset + 1
            for t in _decode(codec, records):
                if seen.add(t.trigger_id) and wanted.matches(t.customer_id, t.rule_id, t.fired_at):
                    line = (
                        orjson.dumps(trigger_json(t)).decode()
                        if json
                        else printable(
                            f"{format_iso(t.fired_at)} {t.rule_id} {t.kind} {t.customer_id}"
                        )
                    )
                    sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (engage.cli.main)
        return
