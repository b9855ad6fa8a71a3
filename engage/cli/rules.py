"""``engage rules``: the loaded rules and how often each has fired."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from engage.cli.app import app, out
from engage.runtime import Engine
from rules.durations import format_duration

RulesOption = Annotated[
    str | None,
    typer.Option(
        "--rules", help="A rule file (YAML) to use instead of the shipped rules/default.yaml."
    ),
]


@app.command(name="rules")
def list_rules(
    rules: RulesOption = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per rule.")] = False,
) -> None:
    """List the loaded rules with their kind, audience, controls and times fired."""
    with Engine.open(rules=rules) as engine:
        assert engine.rules is not None
        fired = engine.store.trigger_counts()  # both arms: a held-out trigger fired too
        ruleset = engine.rules
    rows: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        on = ", ".join(rule.types) if rule.on == "event" else "timer"
        if rule.due is not None and rule.due.solve is not None:
            on = f"timer: {rule.due.text}"
        elif rule.due is not None:
            on = f"timer: {rule.due.anchor} + {rule.due.offset // 86_400_000_000}d"
        once = rule.once_per.kind if rule.once_per else "-"
        cooldown = f"{rule.cooldown // 86_400_000_000}d" if rule.cooldown else "-"
        goal = "-"
        if rule.goal is not None:
            goal = f"{'|'.join(rule.goal.types)} in {format_duration(rule.goal.within)}"
            if rule.goal.when is not None:
                goal += f" if {rule.goal.when.source}"
        rows.append(
            {
                "id": rule.id,
                "version": rule.version,
                "kind": rule.kind,
                "audience": rule.audience,
                "on": on,
                "once_per": once,
                "cooldown": cooldown,
                "fired": fired.get(rule.id, 0),
                "description": rule.description,
                "goal": goal,
                "holdout": rule.holdout,
            }
        )
    if json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    table = Table(title=f"{len(rows)} rules from {ruleset.source or 'rules/default.yaml'}")
    columns = ("id", "version", "kind", "audience", "on", "once per", "cooldown", "goal",
               "holdout", "fired")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            str(row["version"]),
            row["kind"],
            row["audience"],
            row["on"],
            row["once_per"],
            row["cooldown"],
            row["goal"],
            f"{row['holdout']:.0%}" if row["holdout"] else "-",
            str(row["fired"]),
        )
    out.print(table)
    out.print(
        f"frequency cap: at most {ruleset.cap.count} marketing triggers per customer in "
        f"any {ruleset.cap.window // 86_400_000_000} days; marketing rules skip "
        "unsubscribed customers"
    )
