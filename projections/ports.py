"""The projections' port: the ``ProjectionStore`` and its ``UnitOfWork``.

A batch's unit of work writes profiles, consumer offsets, partition clocks
and models, timers, dead letters, the trigger outbox, KPIs and applied event
ids together, in one transaction; the store also answers the reads of those
projections (a profile, offsets, the clock, status and search).

That single transaction is the whole exactly-once story: a batch's effects
(profiles, dead letters, trigger outbox) and the offsets that say "this batch
is done" commit or vanish together, so a crash at any instant neither skips
nor double-applies an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from events.dead_letters import DeadLetterRow
from events.model import Micros, TriggerConverted, TriggerEvent
from projections.kpis import KpiDelta
from projections.predictions import Model
from projections.profile import Profile


class UnitOfWork(Protocol):
    """One batch's writes (and the reads it needs before them), committed or
    rolled back together by ``ProjectionStore.transaction``."""

    def lock_offsets(self, consumer: str, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        """Lock and return the committed positions (next offset to read, 0 if none).

        The lock serialises processors that share a consumer name, so two of
        them can never apply the same batch."""
        ...

    def save_offsets(self, consumer: str, stream: str, offsets: Mapping[int, int]) -> None: ...

    def claim_partitions(
        self, consumer: str, stream: str, partitions: Iterable[int], writer: str
    ) -> bool:
        """Record ``writer`` as the last to write these partitions' profiles.

        True when it already was for every one of them: nobody else has written
        them since, so the writer's in-memory profiles are still current. Call
        after ``lock_offsets``, whose row locks keep other writers out."""
        ...

    def load_profiles(self, customer_ids: Sequence[str]) -> dict[str, Profile]: ...

    def save_profiles(self, profiles: Sequence[Profile]) -> None: ...

    def get_clock(self, consumer: str) -> Micros | None: ...

    def partition_clocks(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Micros]:
        """Each partition's clock as committed with its offset (absent: none yet)."""
        ...

    def save_partition_clocks(
        self, consumer: str, stream: str, clocks: Mapping[int, Micros]
    ) -> None: ...

    def partition_models(
        self, consumer: str, stream: str, partitions: Iterable[int]
    ) -> dict[int, Model]:
        """The fitted model in effect on each partition (absent: none adopted yet)."""
        ...

    def save_partition_models(
        self, consumer: str, stream: str, models: Mapping[int, Model]
    ) -> None:
        """Keep each partition's model beside its offset and clock."""
        ...

    def repeat_buyers(self) -> list[str]:
        """Every customer with purchases on two or more days: those whose
        model-solved timers re-arm when a new model is adopted."""
        ...

    def load_timers(self, partitions: Iterable[int]) -> list[tuple[str, str, Micros, int]]:
        """Every armed (customer_id, rule_id, due, partition) row of these
        partitions: what a writer rebuilds its timer queue from."""
        ...

    def save_clock(self, consumer: str, clock: Micros) -> None: ...

    def dead_letter(self, rows: Sequence[DeadLetterRow]) -> None: ...

    def add_outbox(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], *, published: bool = False
    ) -> None:
        """Encoded triggers for the relay; a trigger_id already there is ignored.
        ``published``: they go to the triggers stream in this same transaction
        (``publish_triggers``), so the relay has nothing to move."""
        ...

    def publish_triggers(
        self, triggers: Sequence[tuple[TriggerEvent, bytes]], partitions: int
    ) -> None:
        """Append to the triggers stream inside this transaction, where the log
        lives in the same database (the embedded default): one write instead
        of outbox, relay read, append and mark."""
        ...

    def save_timers(
        self, customer_ids: Sequence[str], timers: Sequence[tuple[str, str, Micros, int]]
    ) -> None:
        """Replace the armed timers of these customers with
        (customer_id, rule_id, due, partition) rows."""
        ...

    def save_kpis(self, delta: KpiDelta) -> None:
        """Add one batch's KPI deltas (``projections.kpis``)."""
        ...

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        """Delete these customers' profiles, armed timers and pending outbox
        triggers: a ``subject_erased`` record (an erased person) was read.
        KPI totals stay as they are."""

    def forget_profiles(self, customer_ids: Sequence[str]) -> None:
        """Delete these profiles and their armed timers (persons absorbed by a
        merge: their events now count in the person that absorbed them);
        their fired triggers stay."""

    def save_conversions(self, conversions: Sequence[TriggerConverted]) -> None:
        """Record converted triggers (``rules.goals``); a trigger_id already
        recorded is ignored, so a redelivered batch converts nothing twice."""
        ...

    def claim_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Record these event_ids as applied; return those not applied before.

        Only the Kafka log needs it (the PostgreSQL log refuses a repeated id
        at append); it runs in the batch transaction, so a rolled-back batch
        claims nothing."""
        ...


class ProjectionStore(Protocol):
    """The projections: a unit of work per batch, and the reads of what it wrote."""

    def transaction(self) -> AbstractContextManager[UnitOfWork]: ...

    def get(self, customer_id: str) -> Profile | None: ...

    def clock(self, consumer: str) -> Micros | None: ...

    def offsets(self, consumer: str, stream: str) -> dict[int, int]: ...

    def model(self, consumer: str) -> Model | None:
        """The newest model any of the consumer's partitions has adopted."""
        ...

    def model_as_of(self, at: Micros) -> Model | None:
        """The newest model fitted on purchases up to ``at`` at the latest
        (``engage model fit --as-of``), for views as of ``at``: it knows
        nothing later, so a past view leaks no future."""
        ...

    def count(self) -> int: ...

    def conversions(self) -> list[TriggerConverted]:
        """Every recorded conversion, by trigger_id."""
        ...

    def sample_ids(self, limit: int) -> list[str]: ...

    def consumers(self) -> list[tuple[str, str, int]]:
        """(consumer, stream, records consumed) for every consumer that committed."""
        ...

    def clocks(self) -> dict[str, Micros]:
        """Each consumer's clock (``engage status``)."""
        ...

    def search(self, text: str, limit: int) -> list[tuple[str, int | None]]:
        """(customer_id, last_seen) of customers whose id starts with ``text``
        (case-insensitive), by id: the dashboard's search box."""
        ...

    def trigger_counts(self) -> dict[str, int]:
        """Triggers fired per rule (from the outbox, whichever log carries the stream)."""
        ...

    def trigger_histogram(self, bucket: Micros, since: Micros | None) -> list[tuple[str, int, int]]:
        """(rule_id, bucket start, triggers) per rule per ``bucket`` of fired_at,
        by bucket then rule."""
        ...

    def close(self) -> None: ...
