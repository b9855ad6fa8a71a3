"""Webhook delivery: triggers from the triggers stream to subscribed endpoints.

Where it runs: inside ``engage serve`` (a background thread, on by default)
or on its own as ``engage webhooks deliver``. Several deliverers may run at
once: queueing locks each subscription's cursor rows, and sending holds a
per-subscription advisory lock, so each subscription has one sender at a time.

How it works, per subscription:

1. **feed**: read the triggers stream from the subscription's own cursor,
   keep the triggers matching its kind/rule filter, and insert them into its
   queue while advancing the cursor, in one transaction;
2. **send**: a thread per subscription POSTs due queue items, signed
   (``consumers.webhook_signature``), with a timeout; a 2xx marks an item
   delivered, anything else schedules a retry with exponential backoff, and
   after ``max_attempts`` the item is dead (``engage webhooks log --dead``,
   ``engage webhooks retry``). Every attempt is logged.

A slow or dead endpoint only ever occupies its own thread, so the others keep
flowing. Delivery is at least once (a crash between the POST and recording it
resends); receivers use ``trigger_id`` as the idempotency key.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from consumers.ports import AttemptResult, QueueItem, Subscription, WebhookStore
from consumers.webhook_signature import HEADER, sign
from consumers.webhook_store import PostgresWebhookStore
from consumers.webhook_targets import Target, TargetRefused, check_target
from events.codec import CodecError, TriggerCodec
from events.contract import trigger_json
from events.errors import EngageError
from events.log import TRIGGERS, Log

FEED_BATCH: Final = 1_000
USER_AGENT: Final = "engage-webhooks/0.1"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout_s: float = 5.0
    max_attempts: int = 8
    base_backoff_s: float = 2.0
    max_backoff_s: float = 3600.0
    batch: int = 50

    def backoff(self, attempts: int) -> float:
        """Delay before the next try after ``attempts`` failed ones: 2s, 4s, 8s..."""
        return float(min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempts - 1)))


def feed(store: WebhookStore, log: Log, subscriptions: Sequence[Subscription]) -> dict[int, int]:
    """Queue every subscription's new matching triggers; returns how many per subscription."""
    codec = TriggerCodec()
    queued: dict[int, int] = {}
    for sub in subscriptions:
        seen: list[int] = [1]

        def read(
            positions: dict[int, int], sub: Subscription = sub, seen: list[int] = seen
        ) -> tuple[list[tuple[str, int, str]], Mapping[int, int]]:
            start = {p: positions.get(p, 0) for p in range(log.partitions)}
            records = log.read(TRIGGERS, start, FEED_BATCH)
            new = dict(start)
            items: list[tuple[str, int, str]] = []
            decoded = codec.decode_many([r.payload for r in records])
            for record, t in zip(records, decoded, strict=True):
                new[record.partition] = record.offset + 1
                if isinstance(t, CodecError) or not sub.matches(t.kind, t.rule_id):
                    continue
                items.append((t.trigger_id, t.fired_at, orjson.dumps(trigger_json(t)).decode()))
            seen.append(len(records))
            return items, new

        total = 0
        while seen[-1]:  # until a read finds nothing new
            total += store.enqueue(sub.id, read)
        queued[sub.id] = total
    return queued


def send_one(
    client: httpx.Client, sub: Subscription, item: QueueItem, policy: DeliveryPolicy
) -> tuple[int | None, str | None, float]:
    """POST one signed delivery: (status code, error or None, milliseconds)."""
    body = item.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER: sign(sub.secret, body, int(time.time())),
        "Engage-Trigger-Id": item.trigger_id,
        "Engage-Subscription-Id": str(sub.id),
        "Engage-Delivery-Attempt": str(item.attempts + 1),
    }
    started = time.perf_counter()
    try:
        target = check_target(sub.url, allow_private=sub.allow_private, must_resolve=True)
    except TargetRefused as exc:  # checked again: DNS may have changed since it was added
        return None, str(exc)[:500], (time.perf_counter() - started) * 1000
    url, extensions = pinned(target)
    headers["Host"] = (
        target.host
        if target.port == _DEFAULT_PORT[target.scheme]
        else (f"{_bracketed(target.host)}:{target.port}")
    )
    try:
        response = client.post(
            url, content=body, headers=headers, timeout=policy.timeout_s, extensions=extensions
        )
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return None, f"{type(exc).__name__}: {exc}"[:500], elapsed
    elapsed = (time.perf_counter() - started) * 1000
    if 200 <= response.status_code < 300:
        return response.status_code, None, elapsed
    return response.status_code, f"HTTP {response.status_code}", elapsed


_DEFAULT_PORT: Final = {"http": 80, "https": 443}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pinned(target: Target) -> tuple[str, dict[str, Any]]:
    """The URL with the checked address in place of the host (so the POST goes
    where the policy looked, whatever DNS answers next), and for https the
    host name for SNI and certificate checks."""
    parts = urlsplit(target.url)
    assert target.address is not None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{_bracketed(target.address)}:{target.port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return url, ({"sni_hostname": target.host} if target.scheme == "https" else {})


def deliver_due(
    store: WebhookStore, client: httpx.Client, sub: Subscription, policy: DeliveryPolicy
) -> int:
    """Send this subscription's due items once each; returns how many were tried."""
    items = store.due(sub.id, policy.batch)
    for item in items:
        code, error, ms = send_one(client, sub, item, policy)
        attempts = item.attempts + 1
        if error is None:
            outcome, retry_in = "delivered", None
        elif attempts >= policy.max_attempts:
            outcome, retry_in = "dead", None
        else:
            outcome, retry_in = "retry", policy.backoff(attempts)
        store.record(item, AttemptResult(outcome, code, error, ms, retry_in))
    return len(items)


class _Sender(threading.Thread):
    """One subscription's sending loop, on its own connection and HTTP client."""

    def __init__(self, dsn: str, sub: Subscription, policy: DeliveryPolicy, poll_s: float) -> None:
        super().__init__(name=f"webhook-{sub.id}", daemon=True)
        self.dsn = dsn
        self.sub = sub
        self.policy = policy
        self.poll_s = poll_s
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            store = PostgresWebhookStore(self.dsn)
        except EngageError as exc:
            self.error = str(exc)
            return
        locked = False
        try:
            with httpx.Client(follow_redirects=False) as client:
                while not self.stop.is_set():
                    if not locked:
                        locked = store.try_lock(self.sub.id)
                        if not locked:  # another deliverer serves it
                            self.stop.wait(self.poll_s * 5)
                            continue
                    deliver_due(store, client, self.sub, self.policy)
                    wait = store.next_due_in(self.sub.id)
                    wait = self.poll_s if wait is None else min(wait, self.poll_s)
                    if wait > 0:
                        self.wake.wait(wait)
                        self.wake.clear()
        except Exception as exc:  # a dropped connection: the deliverer restarts this sender
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if locked:
                # the connection may be gone; the lock goes with it then
                with contextlib.suppress(Exception):
                    store.unlock(self.sub.id)
            store.close()


class WebhookDeliverer:
    """Feeds every subscription's queue from the triggers stream and keeps one
    sender thread per active subscription."""

    def __init__(
        self,
        dsn: str,
        log: Log,
        policy: DeliveryPolicy | None = None,
        *,
        poll_s: float = 1.0,
        on_error: Callable[[str], object] | None = None,
    ) -> None:
        self.dsn = dsn
        self.log = log
        self.policy = policy or DeliveryPolicy()
        self.poll_s = poll_s
        self.on_error = on_error
        self._senders: dict[int, _Sender] = {}

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; the log must be used by this thread only.

        A database error ends the run (after stopping the senders): the caller
        reopens its connections and runs again."""
        store = PostgresWebhookStore(self.dsn)
        try:
            while not stop.is_set():
                subs = store.subscriptions()
                self._reconcile(subs)
                for sub_id, n in feed(store, self.log, subs).items():
                    if n and sub_id in self._senders:
                        self._senders[sub_id].wake.set()
                self.log.wait(self.poll_s)
        finally:
            for sender in self._senders.values():
                sender.stop.set()
                sender.wake.set()
            for sender in self._senders.values():
                sender.join(timeout=self.policy.timeout_s + 2)
            store.close()

    def _reconcile(self, subs: Sequence[Subscription]) -> None:
        live = {s.id: s for s in subs}
        for sub_id in list(self._senders):
            sender = self._senders[sub_id]
            if sub_id not in live or not sender.is_alive():
                sender.stop.set()
                sender.wake.set()
                del self._senders[sub_id]
                if sender.error and self.on_error is not None:
                    self.on_error(f"webhook #{sub_id}: {sender.error}")
        for sub_id, sub in live.items():
            if sub_id not in self._senders:
                sender = _Sender(self.dsn, sub, self.policy, self.poll_s)
                self._senders[sub_id] = sender
                sender.start()


def deliver_until_idle(dsn: str, log: Log, policy: DeliveryPolicy) -> dict[int, int]:
    """Queue new triggers, then send everything due now, each subscription in
    its own thread; items scheduled for a later retry are left for later.
    Returns the attempts made per subscription."""
    store = PostgresWebhookStore(dsn)
    try:
        subs = store.subscriptions()
        feed(store, log, subs)
    finally:
        store.close()
    tried: dict[int, int] = {}

    def work(sub: Subscription) -> None:
        own = PostgresWebhookStore(dsn)
        try:
            if not own.try_lock(sub.id):
                return
            with httpx.Client() as client:
                total = 0
                while n := deliver_due(own, client, sub, policy):
                    total += n
            tried[sub.id] = total
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tried
