"""``engage webhooks``: subscribe endpoints to triggers and watch deliveries."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.table import Table

from consumers.webhook_store import WebhookStore
from consumers.webhooks import DeliveryPolicy, WebhookDeliverer, deliver_until_idle
from engage.cli.app import app, err, out
from engage.cli.rules import RulesOption
from engage.errors import ConfigError
from engage.runtime import Engine
from events.log import TRIGGERS
from events.redact import strip_credentials

hooks_app = typer.Typer(
    help="Deliver triggers to your endpoints by HTTP POST (the trigger JSON), signed "
    "with HMAC-SHA256 in the `Engage-Signature: t=...,v1=...` header, retried with "
    "exponential backoff. Delivery runs inside `engage serve` (default) or "
    "`engage webhooks deliver`. At least once: use trigger_id as your idempotency key.",
    no_args_is_help=True,
)
app.add_typer(hooks_app, name="webhooks")


@hooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The endpoint to POST triggers to.")],
    kind: Annotated[
        str | None, typer.Option(help="Only triggers of this kind (e.g. thank_you).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only triggers of this rule id.")] = None,
    from_start: Annotated[
        bool,
        typer.Option("--from-start", help="Also deliver every trigger already fired."),
    ] = False,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Allow a private, loopback or link-local target (a local receiver in "
            "development); refused by default.",
        ),
    ] = False,
    rules: RulesOption = None,
) -> None:
    """Subscribe URL to triggers fired from now on (or --from-start). Prints the
    signing secret: keep it to verify deliveries. The URL must reach a public
    address unless --allow-private; --kind and --rule must name a kind or rule
    of the rules (the shipped pack, or --rules FILE)."""
    with Engine.open(rules=rules) as engine:
        assert engine.rules is not None
        _check_filter("--kind", kind, {r.kind for r in engine.rules.rules})
        _check_filter("--rule", rule, {r.id for r in engine.rules.rules})
        heads = engine.stream.heads(TRIGGERS)
        start = dict.fromkeys(heads, 0) if from_start else heads
        store = WebhookStore(engine.dsn)
        try:
            sub = store.add(url, kind, rule, start, allow_private=allow_private)
        finally:
            store.close()
    what = (
        ", ".join(x for x in (kind and f"kind {kind}", rule and f"rule {rule}") if x)
        or "all triggers"
    )
    out.print(f"webhook #{sub.id} -> {strip_credentials(sub.url)} ({what})", markup=False)
    out.print(f"signing secret (shown only once): {sub.secret}", markup=False)


def _check_filter(option: str, value: str | None, known: set[str]) -> None:
    if value is not None and value not in known:
        raise ConfigError(
            f"{option} {value!r} matches no loaded rule; expected one of "
            f"{', '.join(sorted(known))} (or pass --rules FILE)"
        )


@hooks_app.command("list")
def list_hooks(
    all_: Annotated[bool, typer.Option("--all", help="Include removed subscriptions.")] = False,
) -> None:
    """List subscriptions with their queue: pending, delivered and dead deliveries."""
    with Engine.open() as engine:
        store = WebhookStore(engine.dsn)
        try:
            subs = store.subscriptions(include_removed=all_)
            counts = store.counts()
        finally:
            store.close()
    table = Table(title=f"{len(subs)} webhook subscriptions")
    for column in ("id", "url", "kind", "rule", "pending", "delivered", "dead", "removed"):
        table.add_column(column)
    for s in subs:
        table.add_row(
            str(s.id),
            strip_credentials(s.url),
            s.kind or "*",
            s.rule_id or "*",
            str(counts.get((s.id, "pending"), 0)),
            str(counts.get((s.id, "delivered"), 0)),
            str(counts.get((s.id, "dead"), 0)),
            s.removed_at or "-",
        )
    out.print(table)


@hooks_app.command("remove")
def remove(sub_id: Annotated[int, typer.Argument(help="The subscription id.")]) -> None:
    """Stop delivering to a subscription (its delivery log is kept)."""
    with Engine.open() as engine:
        store = WebhookStore(engine.dsn)
        try:
            store.remove(sub_id)
        finally:
            store.close()
    out.print(f"removed webhook #{sub_id}")


@hooks_app.command("log")
def delivery_log(
    sub_id: Annotated[int | None, typer.Argument(help="Only this subscription.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Show given-up deliveries.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Most recent attempts to show.")] = 50,
) -> None:
    """Show delivery attempts (time, trigger, attempt, HTTP status, outcome), or
    with --dead the deliveries that were given up after the last retry."""
    with Engine.open() as engine:
        store = WebhookStore(engine.dsn)
        try:
            if dead:
                rows = store.dead(sub_id, limit)
            else:
                attempts = store.attempts(sub_id, limit)
        finally:
            store.close()
    if dead:
        table = Table(title=f"{len(rows)} dead deliveries (`engage webhooks retry` re-queues)")
        for column in ("webhook", "trigger_id", "attempts", "last error"):
            table.add_column(column)
        for sid, tid, n, error in rows:
            table.add_row(str(sid), tid, str(n), error)
        out.print(table)
        return
    table = Table(title=f"{len(attempts)} delivery attempts")
    for column in ("at", "webhook", "trigger_id", "attempt", "status", "ms", "outcome", "error"):
        table.add_column(column)
    for a in attempts:
        table.add_row(
            a.at,
            str(a.subscription_id),
            a.trigger_id,
            str(a.attempt),
            "-" if a.status_code is None else str(a.status_code),
            f"{a.duration_ms:.0f}",
            a.outcome,
            a.error or "",
        )
    out.print(table)


@hooks_app.command("retry")
def retry(
    sub_id: Annotated[int | None, typer.Argument(help="Only this subscription.")] = None,
) -> None:
    """Re-queue dead deliveries for another round of attempts."""
    with Engine.open() as engine:
        store = WebhookStore(engine.dsn)
        try:
            n = store.retry_dead(sub_id)
        finally:
            store.close()
    out.print(f"re-queued {n} dead deliveries")


@hooks_app.command("deliver")
def deliver(
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Send what is due now, then exit."),
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per POST.")] = 5.0,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before dead.")] = 8,
    backoff: Annotated[
        float, typer.Option(min=0.0, help="First retry delay in seconds; doubles each time.")
    ] = 2.0,
) -> None:
    """Run webhook delivery on its own (use `engage serve --no-deliver` then)."""
    policy = DeliveryPolicy(timeout_s=timeout, max_attempts=max_attempts, base_backoff_s=backoff)
    with Engine.open() as engine:
        if until_idle:
            tried = deliver_until_idle(engine.dsn, engine.stream, policy)
            out.print(f"made {sum(tried.values())} delivery attempts")
            return
        err.print("delivering webhooks; Ctrl-C to stop")
        stop = threading.Event()
        deliverer = WebhookDeliverer(
            engine.dsn, engine.stream, policy, on_error=lambda m: err.print(m, markup=False)
        )
        try:
            deliverer.run(stop)
        except KeyboardInterrupt:
            stop.set()
            err.print("stopped")
