"""``engage demo``: a synthetic history, published and processed, end to end."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.processor import DEFAULT_BATCH
from engage.cli.app import RateBar, app, out, plural
from engage.cli.processing import process_until_idle
from engage.cli.rules import RulesOption
from engage.runtime import Engine, wall_micros
from engage.synthetic import HistorySpec, estimate_events, generate_lines
from events.model import DAY, SECOND
from projections.customer360 import customer_360


def _showcase(engine: Engine, clock: int) -> list[dict[str, Any]]:
    """One customer per lifecycle stage and the top spender, from the first
    thousand profiles: more telling than the first few ids."""
    with engine.store.transaction() as tx:
        profiles = tx.load_profiles(engine.store.sample_ids(1_000))
    views = [customer_360(p, clock) for p in profiles.values()]
    chosen: dict[str, dict[str, Any]] = {}
    for view in views:
        chosen.setdefault(str(view["lifecycle_stage"]), view)
    if views:
        top = max(views, key=lambda v: float(v["lifetime_spend"]))
        chosen.setdefault("top spender", top)
    return sorted(chosen.values(), key=lambda v: str(v["customer_id"]))


@app.command()
def demo(
    customers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="ENGAGE_DEMO_CUSTOMERS",
            help="How many synthetic customers (a smaller demo for a quick look, or for "
            "tests that walk the guide).",
        ),
    ] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="How many days of history.")] = 180,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same history.")] = 7,
    bad_lines: Annotated[
        int, typer.Option(help="Deliberately bad lines mixed in, to show the dead-letter store.")
    ] = 12,
    rules: RulesOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes sharing the partitions while processing (default: as for "
            "`engage run --until-idle`).",
        ),
    ] = None,
) -> None:
    """Generate a realistic synthetic history and run the engine on it.

    The history (default 10,000 customers over the 180 days up to now,
    several hundred thousand touchpoints on every channel, with seasonality,
    churn and win-backs) is published to the log and processed into profiles; the demo
    then prints throughput and a few customer-360s. Running it again adds
    nothing: every event_id is already on the log.
    """
    # the history ends at the wall time, so the demo shows a living business
    # (today's actives, this month's at-risk) rather than one long churned
    now = wall_micros() // SECOND * SECOND
    spec = HistorySpec(
        customers=customers, days=days, start=now - days * DAY, seed=seed, bad_lines=bad_lines
    )
    expected = estimate_events(spec)
    with Engine.open(rules=rules) as engine:
        publisher = engine.publisher()
        started = time.perf_counter()
        with RateBar("publishing", expected + bad_lines, transient=False) as bar:
            report = publisher.publish_lines(
                generate_lines(spec), "demo", lambda lines, _bytes: bar.update(lines)
            )
            bar.update(report.lines, total=report.lines)
        publish_s = time.perf_counter() - started
        out.print(
            f"published: accepted {report.accepted}, duplicate {report.duplicates}, "
            f"rejected {report.rejected} (see `engage dlq`) in {publish_s:.1f}s "
            f"({report.lines / publish_s:,.0f} lines/s)"
        )
        started = time.perf_counter()
        stats = process_until_idle(engine, rules, workers, None, DEFAULT_BATCH, transient=False)
        process_s = time.perf_counter() - started
        out.print(
            f"processed {plural(stats.events, 'event')} into "
            f"{plural(engine.store.count(), 'profile')} in "
            f"{process_s:.1f}s ({stats.events / max(process_s, 1e-9):,.0f} events/s)"
        )
        clock = engine.store.clock(DEFAULT_CONSUMER) or 0
        table = Table(title="a few customers")
        for column in (
            "customer",
            "stage",
            "orders",
            "spend",
            "open rate",
            "click rate",
            "nps",
            "engagement",
            "subscribed",
        ):
            table.add_column(column)
        for view in _showcase(engine, clock):
            table.add_row(
                str(view["customer_id"]),
                str(view["lifecycle_stage"]),
                str(view["order_count"]),
                f"{view['lifetime_spend']:,.2f}",
                "-" if view["open_rate"] is None else f"{view['open_rate']:.0%}",
                "-" if view["click_rate"] is None else f"{view['click_rate']:.0%}",
                "-" if view["nps_last"] is None else str(view["nps_last"]),
                str(view["engagement_score"]),
                "yes" if view["subscribed"] else "no",
            )
        out.print(table)
        fired = engine.log.trigger_counts()
        assert engine.rules is not None
        per_rule = Table(title=f"triggers fired: {sum(fired.values())}")
        for column in ("rule", "kind", "audience", "fired"):
            per_rule.add_column(column)
        for rule in engine.rules.rules:
            per_rule.add_row(rule.id, rule.kind, rule.audience, str(fired.get(rule.id, 0)))
        out.print(per_rule)
        out.print(
            "next: `engage profile c-000001`, `engage triggers --rule lifetime-spend-1000`, "
            "`engage kpis --by week`, `engage replay`, `engage dlq`, "
            "and `engage serve` for the dashboard (create a read key with "
            "`engage keys create me --scope read`)"
        )
