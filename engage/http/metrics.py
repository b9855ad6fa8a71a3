"""``/metrics`` in the Prometheus text format.

Log size, lag, DLQ size and triggers per rule are read from the database at
scrape time, so every server reports the same truth; ingest counts are this
process's own. Rates (events/s) are Prometheus's job (``rate()`` over the
counters); two gauges also give this server's recent rates for a glance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.pipeline import DEFAULT_CONSUMER
from consumers.webhook_store import WebhookStore
from events.log import TOUCHPOINTS, TRIGGERS

if TYPE_CHECKING:
    from engage.http.pool import EnginePool


class Metrics(Collector):
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._pool: EnginePool | None = None
        self._lock = threading.Lock()
        self._ingested = {"accepted": 0, "duplicate": 0, "rejected": 0}
        self._requests = 0
        self._samples: list[tuple[float, int, int]] = []  # (time, ingested, processed)
        self.registry.register(self)

    def bind(self, pool: EnginePool) -> None:
        self._pool = pool

    def count_ingest(self, result: dict[str, Any]) -> None:
        with self._lock:
            self._requests += 1
            for k in self._ingested:
                self._ingested[k] += int(result[k])

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _rates(self, now: float, ingested: int, processed: int) -> tuple[float, float]:
        """Events/s over the last minute of scrapes (0 until two scrapes)."""
        with self._lock:
            self._samples.append((now, ingested, processed))
            self._samples = [s for s in self._samples if now - s[0] <= 60] or self._samples[-1:]
            first = self._samples[0]
        span = now - first[0]
        if span <= 0:
            return 0.0, 0.0
        return (ingested - first[1]) / span, (processed - first[2]) / span

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "engage_http_ingest_events",
            "Events posted to this server, by result",
            labels=["result"],
        )
        with self._lock:
            for result, n in self._ingested.items():
                counter.add_metric([result], n)
            requests = self._requests
        yield counter
        yield CounterMetricFamily(
            "engage_http_ingest_requests", "POST /v1/events requests served", value=requests
        )
        if self._pool is None:
            return
        with self._pool.borrow() as engine:
            heads = engine.stream.heads(TOUCHPOINTS)
            trigger_heads = engine.stream.heads(TRIGGERS)
            consumers = engine.store.consumers()
            dlq = engine.dead_letters.count()
            per_rule = engine.store.trigger_counts()
            offsets = engine.store.offsets(DEFAULT_CONSUMER, TOUCHPOINTS)
            hooks = WebhookStore(engine.dsn)
            try:
                queued = hooks.counts()
            finally:
                hooks.close()
        log_events = sum(heads.values())
        yield CounterMetricFamily("engage_log_events", "Touchpoints on the log", value=log_events)
        yield CounterMetricFamily(
            "engage_log_triggers",
            "Triggers on the triggers stream",
            value=sum(trigger_heads.values()),
        )
        processed = sum(offsets.values())
        yield CounterMetricFamily(
            "engage_processed_events", "Touchpoints the processor has committed", value=processed
        )
        lag = GaugeMetricFamily(
            "engage_consumer_lag", "Records not yet processed, per consumer", labels=["consumer"]
        )
        for consumer, stream, consumed in consumers:
            if stream == TOUCHPOINTS:
                lag.add_metric([consumer], max(0, log_events - consumed))
        yield lag
        yield GaugeMetricFamily("engage_dlq_size", "Rows in the dead-letter store", value=dlq)
        rules = CounterMetricFamily(
            "engage_triggers", "Triggers fired, per rule", labels=["rule_id"]
        )
        for rule, n in per_rule.items():
            rules.add_metric([rule], n)
        yield rules
        webhooks = GaugeMetricFamily(
            "engage_webhook_deliveries",
            "Queued webhook deliveries per subscription and state (pending, delivered, dead)",
            labels=["subscription", "state"],
        )
        for (sub_id, state), n in sorted(queued.items()):
            webhooks.add_metric([str(sub_id), state], n)
        yield webhooks
        with self._lock:
            ingested = self._ingested["accepted"]
        ingest_rate, process_rate = self._rates(time.monotonic(), ingested, processed)
        yield GaugeMetricFamily(
            "engage_ingest_events_per_second",
            "Events accepted by this server per second, over the last minute of scrapes",
            value=ingest_rate,
        )
        yield GaugeMetricFamily(
            "engage_processed_events_per_second",
            "Events processed per second, over the last minute of scrapes",
            value=process_rate,
        )
