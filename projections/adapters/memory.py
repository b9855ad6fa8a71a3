"""The profile store in memory: the same unit of work as PostgreSQL's, for
tests of the pipeline and the processor that should take milliseconds.

A transaction holds the store's lock (as the offsets' row locks serialise
PostgreSQL batches) and works on copies of the tables; they replace the
store's tables only when the block exits without an error, so a failed batch
leaves nothing, as a rolled-back one does. Profiles are copied in and out, as
they are serialised in and out of PostgreSQL, so a caller mutating a loaded
profile changes nothing stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from events.adapters.memory import MemoryLog
from events.dead_letters import DeadLetterRow
from events.errors import StorageError
from events.log import TRIGGERS, Entry
from events.model import Micros, TriggerConverted, TriggerEvent
from projections.kpis import KpiDelta
from projections.predictions import Model
from projections.profile import Profile

_Key = tuple[str, str, int]
"""(consumer, stream, partition)."""
V = TypeVar("V")


@dataclass
class _Tables:
    profiles: dict[str, Profile] = field(default_factory=dict)
    offsets: dict[_Key, int] = field(default_factory=dict)
    clocks: dict[_Key, Micros] = field(default_factory=dict)
    models: dict[_Key, Model] = field(default_factory=dict)
    writers: dict[_Key, str] = field(default_factory=dict)
    consumer_clock: dict[str, Micros] = field(default_factory=dict)
    timers: dict[str, list[tuple[str, str, Micros, int]]] = field(default_factory=dict)
    outbox: dict[str, tuple[TriggerEvent, bytes, bool]] = field(default_factory=dict)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    seen_events: set[str] = field(default_factory=set)
    kpis: KpiDelta = field(default_factory=KpiDelta)
    conversions: dict[str, TriggerConverted] = field(default_factory=dict)

    def copy(self) -> _Tables:
        """Copies of every table (profiles are never mutated in place here)."""
        kpis = KpiDelta()
        kpis.merge(self.kpis)
        return replace(
            self,
            profiles=dict(self.profiles),
            offsets=dict(self.offsets),
            clocks=dict(self.clocks),
            models=dict(self.models),
            writers=dict(self.writers),
            consumer_clock=dict(self.consumer_clock),
            timers=dict(self.timers),
            outbox=dict(self.outbox),
            dead_letters=list(self.dead_letters),
            seen_events=set(self.seen_events),
            kpis=kpis,
            conversions=dict(self.conversions),
        )


class MemoryUnitOfWork:
    def __init__(self, tables: _Tables, log: MemoryLog | None) -> None:
        self.t = tables
        self._log = log
        self._published: list[Entry] = []

    def lock_offsets(self, consumer: str, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        return {p: self.t.offsets.setdefault((consumer, stream, p), 0) for p in partitions}

    def save_offsets(self, consumer: str, stream: str, offsets: Mapping[int, int]) -> None:
        for p, offset in offsets.items():
            if not isinstance(offset, int):
                raise StorageError(f"offset {offset!r} of partition {p} is not a number")
            self.t.offsets[(consumer, stream, p)] = offset

    def claim_partitions(
        self, consumer: str, stream: str, partitions: Iterable[int], writer: str
    ) -> bool:
        mine = True
        for p in partitions:
            key = (consumer, stream, p)
            mine = mine and self.t.writers.get(key) == writer
            self.t.writers[key] = writer
        return mine

    def load_profiles(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        found = (self.t.profiles.get(c) for c in customer_ids)
        return {p.customer_id: p.copy() for p in found if p is not None}

    def save_profiles(self, profiles: Sequence[Profile]) -> None:
        for p in profiles:
            self.t.profiles[p.customer_id] = p.copy()

    def get_clock(self, consumer: str) -> Micros | None:
        return self.t.consumer_clock.get(consumer)

    def save_clock(self, consumer: str, clock: Micros) -> None:
        self.t.consumer_clock[consumer] = max(clock, self.t.consumer_clock.get(consumer, clock))

    def _per_partition(
        self, table: Mapping[_Key, V], consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, V]:
        keys = ((p, (consumer, stream, p)) for p in partitions)
        return {p: table[k] for p, k in keys if k in table}

    def _set_per_partition(
        self,
        table: dict[_Key, V],
        consumer: str,
        stream: str,
        values: Mapping[int, V],
        merge: Callable[[V, V], V],
    ) -> None:
        """Only partitions with an offsets row, as the UPDATE of that row does."""
        for p, value in values.items():
            key = (consumer, stream, p)
            if key in self.t.offsets:
                table[key] = merge(table[key], value) if key in table else value

    def partition_clocks(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Micros]:
        return self._per_partition(self.t.clocks, consumer, stream, partitions)

    def save_partition_clocks(
        self, consumer: str, stream: str, clocks: Mapping[int, Micros]
    ) -> None:
        self._set_per_partition(self.t.clocks, consumer, stream, clocks, max)

    def partition_models(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Model]:
        return self._per_partition(self.t.models, consumer, stream, partitions)

    def save_partition_models(
        self, consumer: str, stream: str, models: Mapping[int, Model]
    ) -> None:
        self._set_per_partition(self.t.models, consumer, stream, models, lambda _, new: new)

    def repeat_buyers(self) -> list[str]:
        return [
            c
            for c, p in self.t.profiles.items()
            if p.purchase_days is not None and len(p.purchase_days) >= 2
        ]

    def load_timers(self, partitions: Iterable[int]) -> list[tuple[str, str, Micros, int]]:
        wanted = set(partitions)
        return [row for rows in self.t.timers.values() for row in rows if row[3] in wanted]

    def save_timers(
        self, customer_ids: Sequence[str], timers: Sequence[tuple[str, str, Micros, int]]
    ) -> None:
        for customer_id in customer_ids:
            self.t.timers.pop(customer_id, None)
        for row in timers:
            self.t.timers.setdefault(row[0], []).append(row)

    def dead_letter(self, rows: Sequence[DeadLetterRow]) -> None:
        self.t.dead_letters.extend(rows)

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        gone = set(customer_ids)
        for customer_id in gone:
            self.t.profiles.pop(customer_id, None)
            self.t.timers.pop(customer_id, None)
        self.t.outbox = {
            k: v for k, v in self.t.outbox.items() if v[2] or v[0].customer_id not in gone
        }

    def forget_profiles(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            self.t.profiles.pop(customer_id, None)
            self.t.timers.pop(customer_id, None)

    def add_outbox(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], *, published: bool = False
    ) -> None:
        for trigger, payload in triggers:
            self.t.outbox.setdefault(trigger.trigger_id, (trigger, payload, published))

    def publish_triggers(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], partitions: int
    ) -> None:
        """Held until commit: the memory log cannot roll an append back."""
        self._published.extend(
            Entry(t.trigger_id, t.customer_id, payload, t.fired_at, t.rule_id)
            for t, payload in triggers
        )

    def save_kpis(self, delta: KpiDelta) -> None:
        self.t.kpis.merge(delta)

    def save_conversions(self, conversions: Sequence[TriggerConverted]) -> None:
        for c in conversions:
            self.t.conversions.setdefault(c.trigger_id, c)

    def claim_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        fresh = set(event_ids) - self.t.seen_events
        self.t.seen_events.update(fresh)
        return fresh

    def commit(self) -> None:
        if self._published and self._log is not None:
            self._log.append(TRIGGERS, self._published)


class MemoryProjectionStore:
    """``log``: where ``publish_triggers`` appends on commit (the "same
    database" as the PostgreSQL store's triggers stream)."""

    def __init__(self, log: MemoryLog | None = None) -> None:
        self.tables = _Tables()
        self.log = log
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[MemoryUnitOfWork]:
        with self._lock:
            tx = MemoryUnitOfWork(self.tables.copy(), self.log)
            yield tx
            self.tables = tx.t
            tx.commit()

    def get(self, customer_id: str) -> Profile | None:
        found = self.tables.profiles.get(customer_id)
        return None if found is None else found.copy()

    def clock(self, consumer: str) -> Micros | None:
        return self.tables.consumer_clock.get(consumer)

    def offsets(self, consumer: str, stream: str) -> dict[int, int]:
        return {
            p: o for (c, s, p), o in self.tables.offsets.items() if c == consumer and s == stream
        }

    def model(self, consumer: str) -> Model | None:
        found = [(m.version, k, m) for k, m in self.tables.models.items() if k[0] == consumer]
        return max(found, key=lambda v: (v[0], -v[1][2]))[2] if found else None

    def model_as_of(self, at: Micros) -> Model | None:
        """None: the fits' history (``model_fits``) lives in PostgreSQL only,
        so an as-of view over this store has no predictions."""
        del at
        return None

    def count(self) -> int:
        return len(self.tables.profiles)

    def conversions(self) -> list[TriggerConverted]:
        return [self.tables.conversions[k] for k in sorted(self.tables.conversions)]

    def sample_ids(self, limit: int) -> list[str]:
        return sorted(self.tables.profiles)[:limit]

    def consumers(self) -> list[tuple[str, str, int]]:
        totals: dict[tuple[str, str], int] = {}
        for (consumer, stream, _), offset in self.tables.offsets.items():
            totals[(consumer, stream)] = totals.get((consumer, stream), 0) + offset
        return [(c, s, n) for (c, s), n in sorted(totals.items())]

    def clocks(self) -> dict[str, Micros]:
        return dict(self.tables.consumer_clock)

    def search(self, text: str, limit: int) -> list[tuple[str, int | None]]:
        prefix = text.casefold()
        found = sorted(c for c in self.tables.profiles if c.casefold().startswith(prefix))
        return [(c, self.tables.profiles[c].last_seen) for c in found[:limit]]

    def trigger_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trigger, _, _ in self.tables.outbox.values():
            counts[trigger.rule_id] = counts.get(trigger.rule_id, 0) + 1
        return dict(sorted(counts.items()))

    def trigger_histogram(self, bucket: Micros, since: Micros | None) -> list[tuple[str, int, int]]:
        counts: dict[tuple[int, str], int] = {}
        for trigger, _, _ in self.tables.outbox.values():
            if since is None or trigger.fired_at >= since:
                key = ((trigger.fired_at // bucket) * bucket, trigger.rule_id)
                counts[key] = counts.get(key, 0) + 1
        return [(rule, start, n) for (start, rule), n in sorted(counts.items())]

    def close(self) -> None:
        pass
