"""``engage backtest``: run a rule file over history in shadow and report what it would fire."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from consumers.history import touchpoints_in_time_order
from consumers.pipeline import DEFAULT_CONSUMER
from engage.cli.app import RateBar, app, instant_option, out, parse_time_option, plural
from engage.cli.outcomes import outcomes_table
from engage.errors import ConfigError
from engage.runtime import Engine
from events.codec import CodecError, TriggerCodec
from events.contract import touchpoint_json, trigger_json
from events.log import TOUCHPOINTS
from events.model import ModelFitted, TriggerEvent
from projections.adapters.postgres_outbox import newest_triggers
from rules import load_rules
from rules.backtest import Window, outcomes, report, simulate, window_json

SinceOption = Annotated[
    str | None, instant_option("--from", "Report triggers fired at or after this ISO 8601 instant.")
]
UntilOption = Annotated[
    str | None,
    instant_option("--to", "End history before this ISO 8601 instant; default: the clock."),
]


@app.command()
def backtest(
    rules_file: Annotated[str, typer.Argument(metavar="RULES.yaml", help="The rule file to try.")],
    since: SinceOption = None,
    until: UntilOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
    sample: Annotated[
        int, typer.Option(min=0, help="Sample triggers per rule, with their causing events.")
    ] = 5,
) -> None:
    """Run RULES.yaml over the whole history without firing anything, and report
    per rule: triggers per week, customers hit, a sample with the events that
    caused each, and the overlap with the triggers the live rules fired.

    Profiles are folded from the first event, so thresholds and once-per memory
    are right; --from only limits what is reported. The rules run through
    rules/harness.py, the same interleaving of fold, rules and timers as the
    processor, so a rule file identical to the live one reports exactly the
    live triggers.
    """
    if not Path(rules_file).is_file():
        raise ConfigError(f"no such rule file: {rules_file}")
    ruleset = load_rules(rules_file)
    start = parse_time_option(since, "--from")
    end = parse_time_option(until, "--to")
    if start is not None and end is not None and end <= start:
        raise ConfigError("--to must be later than --from")
    with Engine.open() as engine:
        total = sum(engine.stream.heads(TOUCHPOINTS).values())
        clock = engine.store.clock(DEFAULT_CONSUMER)
        with RateBar("reading history", total) as bar:
            models: list[ModelFitted] = []
            events = touchpoints_in_time_order(
                engine.stream, TOUCHPOINTS, engine.codec, bar.update, models
            )
        with RateBar("backtesting", len(events)) as bar:
            harness = simulate(ruleset, events, end, clock, bar.update, models)
            fired, final = harness.triggers, harness.clock
        codec = TriggerCodec()
        live: list[TriggerEvent] = []
        # the outbox: every trigger the live rules fired, both arms (the stream
        # holds only the delivered ones), in either log mode
        for payloads in newest_triggers(engine.dsn):
            live.extend(t for t in codec.decode_many(payloads) if not isinstance(t, CodecError))
    index = {e.event_id: e for e in events}
    # the history the rules saw: what ends before --to (the rest is not fed)
    used = len(events) if end is None else sum(1 for e in events if e.occurred_at < end)

    def events_by_id(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: touchpoint_json(index[i]) for i in ids if i in index}

    window = Window(start, end)
    rows = report(ruleset, fired, window, live, events_by_id, trigger_json, sample)
    loop = outcomes(ruleset, fired, harness.conversions, window)
    if json:
        body = {
            "rules_file": rules_file,
            **window_json(window, end if end is not None else (clock or final)),
            "events": used,
            "live_triggers": sum(1 for t in live if window.holds(t.fired_at)),
            "rules": rows,
            "outcomes": loop,
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    upto = "" if until is None else f" before {until}"
    table = Table(
        title=f"backtest of {rules_file} over {plural(used, 'event')}{upto} (nothing fired)"
    )
    for column in ("rule", "kind", "would fire", "customers", "also hit live", "same as live"):
        table.add_column(column, justify="left" if column in ("rule", "kind") else "right")
    for row in rows:
        table.add_row(
            row["rule_id"],
            row["kind"],
            f"{row['triggers']:,}",
            f"{row['customers']:,}",
            f"{row['overlap']['customers_also_hit_live']:,}",
            f"{row['overlap']['same_trigger_ids_as_live']:,}",
        )
    out.print(table)
    for row in rows:
        if not row["triggers"]:
            continue
        weeks = ", ".join(f"{w} {n}" for w, n in list(row["per_week"].items())[-8:])
        out.print(f"[bold]{row['rule_id']}[/bold] per week (latest 8): {weeks}")
        for item in row["sample"]:
            causes = "; ".join(
                f"{e['type']} {e['event_id']} at {e['occurred_at']}"
                for e in item["caused_by_events"]
            )
            out.print(
                f"  {item['fired_at']} {item['customer_id']} <- {causes or '-'}", markup=False
            )
    looped = [r for r in loop if r["arms"][0]["triggers"] + r["arms"][1]["triggers"]]
    if any(ruleset.by_id[r["rule_id"]].goal is not None for r in looped):
        out.print(outcomes_table(looped, "would-be outcomes per rule and arm"))
    out.print("--json gives every week, the samples' events and the overlap per live rule")
