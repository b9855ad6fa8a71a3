"""The one processing pipeline: load → decide → commit.

The embedded processor loop and the Faust agents both hand a batch of log
records to ``Pipeline.process`` inside a store transaction; the pure batch
step ``rules.decide`` holds the whole ordering of fold, rules and timers, so
nothing here knows how an event becomes a profile or a trigger.

Load: decode the records (touchpoints and control records: clock records and
``model_fitted``, ``events.control``), advance each partition's clock, pop the
customers whose timers the new clocks pass from the writer's ``TimerQueue``,
and fetch every profile needed, from the writer's ``ProfileCache`` or the
store. No query scans for due timers; only a ``model_fitted`` record lists the
customers with repeat purchases, whose model-solved timers re-arm with it.

Commit order, all inside the caller's single transaction:
1. poison records (undecodable) go to the dead-letter store;
2. changed profiles are upserted, with their armed timers;
3. trigger events go to the outbox, and, where the log is in the same
   PostgreSQL database, straight onto the triggers stream (marked published);
   control-arm triggers go to the outbox only, marked published (never
   delivered); the conversions the batch decided are recorded;
4. the KPI deltas of the batch (``projections.kpis``) are added;
5. the partition clocks advance with the offsets (never backwards), and the
   model adopted on a partition, if any, is kept beside its clock;
6. the consumer offsets advance past the batch.
The transaction commits after step 6; a crash anywhere before leaves no trace.
The KPI rows come late so that parallel workers sharing a day's rows hold
their locks only briefly.

The profile cache and the timer queue stay in memory between batches while
the pipeline's writer token on its partitions shows that nobody else wrote
them in between. Callers run ``process`` inside ``Pipeline.transaction``,
which drops that memory when the transaction does not commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from consumers.decoding import (
    Decoded,
    DecodedBatch,
    Segment,
    decode_batch,
    drop_erased,
    drop_repeats,
    rekey,
    segments_of,
)
from consumers.identity_changes import IdentityMark, Prepared, prepare, rederive
from consumers.pending import Pending
from consumers.person_runs import lanes, person_runs
from consumers.profile_cache import DEFAULT_CAPACITY, ProfileCache
from events.clock import clock_entry
from events.codec import CodecError, TouchpointCodec, TriggerCodec
from events.keyring import KeyRing
from events.log import TOUCHPOINTS, Entry, LogRecord
from events.model import Micros, ModelFitted, Touchpoint, TriggerEvent
from events.partitioning import partition_for
from events.ports import CustomerHistory
from events.sealing import SEALED, unseal_events
from projections.identity_ports import IdentityReads
from projections.ports import ProjectionStore, UnitOfWork
from projections.predictions import Model
from projections.profile import Profile
from rules import RuleSet
from rules.decide import Outcome, Record, advance, decide
from rules.personal import opened_types
from rules.timer_queue import TimerQueue

DEFAULT_CONSUMER = "engage-processor"


@dataclass(slots=True)
class BatchResult:
    records: int = 0
    events: int = 0
    poison: int = 0
    profiles: int = 0
    triggers: list[TriggerEvent] = field(default_factory=list)
    clock: Micros | None = None


class Pipeline:
    def __init__(
        self,
        codec: TouchpointCodec,
        consumer: str = DEFAULT_CONSUMER,
        rules: RuleSet | None = None,
        trigger_codec: TriggerCodec | None = None,
        cache_capacity: int = DEFAULT_CAPACITY,
        drop_repeated_ids: bool = False,
        publish_to: int | None = None,
        keys: KeyRing | None = None,
        identity: IdentityReads | None = None,
        history: CustomerHistory | None = None,
    ) -> None:
        """``publish_to``: the log's partition count when the triggers stream is
        in the store's own database; triggers are then appended to it in the
        batch transaction (``UnitOfWork.publish_triggers``). ``keys``:
        sealed personal fields are opened (one key lookup per batch) before
        ``decide``, so profiles and rule conditions see them; an erased
        person's stay closed."""
        self.codec = codec
        self.keys = keys
        # identity (``consumers.identity_changes``): the persons, and the log
        # read back by key, to re-derive a person an identity record changes
        self.identity = identity
        self.history = history
        self._opened: tuple[RuleSet | None, frozenset[str]] = (None, opened_types(None))
        self.consumer = consumer
        self.rules = rules
        self.trigger_codec = trigger_codec or TriggerCodec()
        # Kafka cannot refuse a repeated event_id at append, so the pipeline
        # drops it; ids are claimed in the batch's own transaction, so a repeat
        # is dropped exactly when the first copy's batch committed
        self.drop_repeated_ids = drop_repeated_ids
        self.publish_to = publish_to
        self.cache = ProfileCache(cache_capacity)
        self.timers = TimerQueue()
        self._timer_partitions: set[int] = set()
        self._models: dict[int, Model] = {}
        """The last models read, kept so their memo of crossings outlives a batch."""
        self.writer = uuid.uuid4().hex

    def forget(self) -> None:
        """Drop everything held in memory: the store is the truth again."""
        self.cache.clear()
        self.timers.clear()
        self._timer_partitions.clear()

    @contextmanager
    def transaction(self, store: ProjectionStore) -> Iterator[UnitOfWork]:
        """The store transaction a batch runs in. If it does not commit, the
        profiles and timers this pipeline holds in memory are ahead of the
        database, so they are dropped before the error goes on."""
        try:
            with store.transaction() as tx:
                yield tx
        except BaseException:
            self.forget()
            raise

    def _claim(self, tx: UnitOfWork, partitions: Collection[int], stream: str) -> None:
        if not tx.claim_partitions(self.consumer, stream, partitions, self.writer):
            self.forget()
        missing = [p for p in partitions if p not in self._timer_partitions]
        if missing and self.rules is not None:
            self.timers.load(tx.load_timers(missing))
            self._timer_partitions.update(missing)

    def _load(self, tx: UnitOfWork, customer_ids: list[str]) -> dict[str, Profile]:
        found, missing = self.cache.split(customer_ids)
        if missing:
            found.update(tx.load_profiles(missing))
        return found

    def process(
        self,
        tx: UnitOfWork,
        records: Sequence[LogRecord],
        positions: Mapping[int, int],
        now: Micros | None = None,
        caught_up: Collection[int] = (),
        stream: str = TOUCHPOINTS,
    ) -> BatchResult:
        """Apply one batch read from ``positions``. ``now`` and ``caught_up`` are
        not used any more: the clock moves only by what is on the log (clock
        records carry the wall time), so a replay reaches the same clocks."""
        del now, caught_up
        result = BatchResult(records=len(records))
        self._claim(tx, positions.keys(), stream)
        found = self._decode(tx, records, positions, stream)
        decoded, next_offsets = found.records, found.next_offsets
        result.poison = len(found.poison)
        tx.dead_letter(found.poison)
        if self.keys is not None:
            decoded = self._unseal(decoded, self.keys)
        rekey(decoded, found.rekey_at)
        partitions = positions.keys()
        prepared = self._prepare(found.marks)
        pending = Pending()
        clocks = tx.partition_clocks(self.consumer, stream, partitions)
        models = self._partition_models(tx, partitions, stream)
        segments: list[Segment]
        if prepared is not None and not found.erasures and not found.fitted:
            # per person (an erasure or a fitted model, rare, cuts the whole batch)
            self._apply_per_person(
                tx, decoded, found.marks, clocks, models, result, pending, prepared
            )
            segments = []
        elif found.marks or found.erasures:
            segments = segments_of(decoded)
        else:  # nearly every batch: nothing cuts it
            segments = [(cast(list[tuple[int, Record]], decoded), [], [])]
        for i, (batch, erased, marks) in enumerate(segments):
            if batch or len(segments) == 1:
                later = {person for _, gone, _ in segments[i:] for person in gone}
                self._apply(tx, batch, clocks, models, result, later, pending)
            if marks and prepared is not None:
                self._identity_changes(tx, marks, prepared, models, pending)
            if erased:  # forgotten here; the store is the truth for what follows
                self._write(tx, pending, stream)
                tx.forget_customers(erased)
                self.forget()
                self._claim(tx, partitions, stream)
        self._write(tx, pending, stream)
        tx.save_offsets(self.consumer, stream, next_offsets)
        result.clock = max(clocks.values()) if clocks else None
        return result

    def _apply(
        self,
        tx: UnitOfWork,
        batch: list[tuple[int, Record]],
        clocks: dict[int, Micros],
        models: dict[int, Model],
        result: BatchResult,
        erased: set[str],
        pending: Pending,
        until: Mapping[str, Micros] | None = None,
    ) -> None:
        """Decide one run of records (a whole batch, unless identity or
        ``subject_erased`` records cut it) into ``pending``; ``clocks`` and
        ``models`` move on with it. ``erased``: persons erased further on in
        this batch, whose profiles and triggers are dropped (their events
        still count in the KPIs). ``until``: persons whose part of the run ends
        at an identity record (``decide``)."""
        before = dict(clocks)
        rules = self.rules
        due: list[tuple[str, int]] = []
        if rules is not None:
            for partition, clock in advance(batch, before).items():
                due.extend((c, partition) for c in self.timers.pop_due(partition, clock))
            if rules.uses_model:
                due.extend(self._rearm(tx, batch, due))
        wanted = {r.customer_id for _, r in batch if type(r) is Touchpoint}
        wanted.update(c for c, _ in due)
        outcome = decide(batch, self._load(tx, list(wanted)), due, before, rules, models, until)
        if erased:
            drop_erased(outcome, erased)
        result.events += outcome.events
        result.triggers.extend(outcome.triggers)
        result.profiles += len(outcome.profiles)
        self._keep(outcome, pending)
        clocks.update(outcome.clocks)
        models.update(outcome.models)

    def _apply_per_person(
        self,
        tx: UnitOfWork,
        decoded: list[tuple[int, Decoded]],
        marks: list[IdentityMark],
        clocks: dict[int, Micros],
        models: dict[int, Model],
        result: BatchResult,
        pending: Pending,
        prepared: Prepared,
    ) -> None:
        """A batch with identity records (``consumers.person_runs``): one
        ``decide`` for everything up to each named person's first identity
        record (their part ends at its clock), the re-derivations there, then
        the named persons' later runs, the k-th run of each in one ``decide``
        (``consumers.person_runs.lanes``)."""
        before, models_before = dict(clocks), dict(models)
        split = person_runs(decoded, before, marks)
        self._apply(tx, split.others, clocks, models, result, set(), pending, until=split.until)
        self._identity_changes(tx, split.first, prepared, models_before, pending)
        runs_of = split.runs
        profiles: dict[str, Profile | None] = dict(self._load(tx, list(runs_of)))
        for person in pending.dropped & runs_of.keys():
            profiles[person] = None  # absorbed: its stored row is deleted with the batch
        for run_batch in lanes(runs_of, models_before):
            stored = {p: kept for p in run_batch.persons if (kept := profiles.get(p))}
            due = [] if self.rules is None else run_batch.due
            outcome = decide(
                run_batch.records, stored, due, run_batch.start, self.rules, run_batch.models
            )
            outcome.partition_of = {c: run_batch.real[c] for c in outcome.partition_of}
            result.events += outcome.events
            result.triggers.extend(outcome.triggers)
            self._keep(outcome, pending, batch_wide=False)
            profiles.update(outcome.profiles)
            if run_batch.marks:
                self._identity_changes(tx, run_batch.marks, prepared, models_before, pending)
                for person in {m.key for m in run_batch.marks}:
                    profiles[person] = pending.profiles.get(person)
        result.profiles += len(pending.profiles)

    def _identity_changes(
        self,
        tx: UnitOfWork,
        marks: list[IdentityMark],
        prepared: Prepared,
        models: Mapping[int, Model],
        pending: Pending,
    ) -> None:
        """Re-derive the persons identity records change (``consumers.identity_changes``)
        into ``pending``; the cache and the timer queue follow at once."""
        named = {m.key for m in marks}
        stored = self._load(tx, list(named))
        done = rederive(marks, prepared, stored, self.rules, models)
        if done.dropped:
            pending.drop(done.dropped)
            self.cache.drop(done.dropped)
            for person in done.dropped:
                self.timers.arm(person, 0, {})
        pending.keep(done.profiles)
        self.cache.keep(done.profiles)
        by_person = {m.key: m.partition for m in marks}
        for person, armed in done.timers.items():
            partition = by_person[person]
            if self.rules is not None:
                self.timers.arm(person, partition, armed)
                pending.timers[person] = (partition, armed)

    def _prepare(self, marks: list[IdentityMark]) -> Prepared | None:
        """The batch's identity look-ups, once (None: no identity records, or
        a pipeline built without the identity store)."""
        if not marks or self.identity is None or self.history is None:
            return None
        return prepare(marks, self.identity, self.history, self.codec, self.keys)

    def _unseal(self, batch: list[tuple[int, Decoded]], keys: KeyRing) -> list[tuple[int, Decoded]]:
        """Open the sealed events the fold and the rules read (``rules.personal``)."""
        rules = self.rules
        if self._opened[0] is not rules:
            self._opened = (rules, opened_types(rules))
        types = self._opened[1]
        at = [
            i
            for i, (_, r) in enumerate(batch)
            if isinstance(r, Touchpoint) and r.type in types and r.extra and SEALED in r.extra
        ]
        if not at:
            return batch
        sealed = [r for i in at if isinstance(r := batch[i][1], Touchpoint)]
        for i, event in zip(at, unseal_events(sealed, keys), strict=True):
            batch[i] = (batch[i][0], event)
        return batch

    def _partition_models(
        self, tx: UnitOfWork, partitions: Collection[int], stream: str
    ) -> dict[int, Model]:
        stored = tx.partition_models(self.consumer, stream, partitions)
        kept = self._models
        for partition, model in stored.items():
            if kept.get(partition) == model:
                stored[partition] = kept[partition]
            else:
                kept[partition] = model
        return stored

    def _rearm(
        self,
        tx: UnitOfWork,
        batch: Sequence[tuple[int, Record]],
        due: list[tuple[str, int]],
    ) -> list[tuple[str, int]]:
        """Every customer with repeat purchases on a partition that adopts a
        model in this batch: their model-solved timers re-arm with it."""
        fitted = {p: r.partitions for p, r in batch if type(r) is ModelFitted}
        if not fitted:
            return []
        listed = {c for c, _ in due}
        out: list[tuple[str, int]] = []
        for customer_id in tx.repeat_buyers():
            if customer_id in listed:
                continue
            for partition, partitions in fitted.items():
                if partition_for(customer_id, partitions) == partition:
                    out.append((customer_id, partition))
                    break
        return out

    def clock_advances(
        self,
        tx: UnitOfWork,
        partitions: Collection[int],
        partition_count: int,
        wall: Micros,
        step: Micros,
        source: str = "wall",
    ) -> list[Entry]:
        """Clock records for caught-up partitions whose clock is at least
        ``step`` behind ``wall`` (so a quiet log gets one record per partition
        per ``step``, not one per poll). The caller appends them to the log."""
        if self.rules is None:
            return []
        clocks = tx.partition_clocks(self.consumer, TOUCHPOINTS, partitions)
        return [
            clock_entry(p, partition_count, wall, source)
            for p in sorted(partitions)
            if wall - clocks.get(p, wall - step) >= step
        ]

    def _decode(
        self,
        tx: UnitOfWork,
        records: Sequence[LogRecord],
        positions: Mapping[int, int],
        stream: str,
    ) -> DecodedBatch:
        return decode_batch(records, positions, stream, lambda p: self._decode_touchpoints(tx, p))

    def _decode_touchpoints(
        self, tx: UnitOfWork, payloads: list[bytes]
    ) -> Sequence[Touchpoint | CodecError | None]:
        decoded = self.codec.decode_many(payloads)
        if self.drop_repeated_ids:
            return drop_repeats(tx, decoded)
        return decoded

    def _keep(self, outcome: Outcome, pending: Pending, *, batch_wide: bool = True) -> None:
        """A segment's outcome into ``pending``, and into the memory the next
        segment reads (the profile cache, the timer queue). ``batch_wide``
        False: a person's run, whose clocks are the batch's already."""
        changed = outcome.profiles
        pending.keep(changed)
        self.cache.keep(changed)
        if self.rules is not None:
            partition_of = outcome.partition_of
            arm = self.timers.arm
            for customer_id, armed in outcome.timers.items():
                partition = partition_of[customer_id]
                arm(customer_id, partition, armed)
                pending.timers[customer_id] = (partition, armed)
        triggers = outcome.triggers
        if triggers:
            encoded = self.trigger_codec.encode_many(triggers)
            pending.triggers.extend(zip(triggers, encoded, strict=True))
        pending.conversions.extend(outcome.conversions)
        kpis = outcome.kpis
        kpis.count_triggers(triggers)
        pending.kpis.merge(kpis.finish())
        if not batch_wide:
            return
        pending.clocks.update(outcome.clocks)
        if outcome.models:
            pending.models.update(outcome.models)
            self._models.update(outcome.models)

    def _write(self, tx: UnitOfWork, pending: Pending, stream: str) -> None:
        pending.write(
            tx,
            self.consumer,
            stream,
            with_timers=self.rules is not None,
            publish_to=self.publish_to,
        )
