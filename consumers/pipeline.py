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

from consumers.profile_cache import DEFAULT_CAPACITY, ProfileCache
from events.clock import clock_codec, clock_entry
from events.codec import CodecError, TouchpointCodec, TriggerCodec
from events.control import is_control, is_model_fitted, model_codec
from events.dead_letters import DeadLetterRow
from events.log import TOUCHPOINTS, Entry, LogRecord
from events.model import ClockRecord, Micros, ModelFitted, Touchpoint, TriggerEvent
from events.partitioning import partition_for
from projections.ports import ProjectionStore, UnitOfWork
from projections.predictions import Model
from projections.profile import Profile
from rules import RuleSet
from rules.arms import CONTROL
from rules.decide import Outcome, Record, advance, decide, model_of
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
    ) -> None:
        """``publish_to``: the log's partition count when the triggers stream is
        in the store's own database; triggers are then appended to it in the
        batch transaction (``UnitOfWork.publish_triggers``)."""
        self.codec = codec
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
        batch, poison, next_offsets = self._decode(tx, records, positions, stream)
        result.poison = len(poison)
        tx.dead_letter(poison)

        before = tx.partition_clocks(self.consumer, stream, positions.keys())
        models = self._partition_models(tx, positions.keys(), stream)
        rules = self.rules
        due: list[tuple[str, int]] = []
        if rules is not None:
            for partition, clock in advance(batch, before).items():
                due.extend((c, partition) for c in self.timers.pop_due(partition, clock))
            if rules.uses_model:
                due.extend(self._rearm(tx, batch, due))
        wanted = {r.customer_id for _, r in batch if type(r) is Touchpoint}
        wanted.update(c for c, _ in due)
        outcome = decide(batch, self._load(tx, list(wanted)), due, before, rules, models)

        result.events = outcome.events
        result.triggers = outcome.triggers
        result.profiles = len(outcome.profiles)
        self._commit(tx, outcome, stream)
        tx.save_offsets(self.consumer, stream, next_offsets)
        clocks = {**before, **outcome.clocks}
        result.clock = max(clocks.values()) if clocks else None
        return result

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
    ) -> tuple[list[tuple[int, Record]], list[DeadLetterRow], dict[int, int]]:
        """(partition, record) in log order, the poison rows, the next offsets."""
        control_at = [i for i, r in enumerate(records) if is_control(r.payload)]
        if control_at:
            controls = {i: _decode_control(records[i].payload) for i in control_at}
            plain = [r.payload for i, r in enumerate(records) if i not in controls]
            touchpoints = iter(self._decode_touchpoints(tx, plain))
            decoded: list[Record | CodecError | None] = [
                controls[i] if i in controls else next(touchpoints) for i in range(len(records))
            ]
        else:
            decoded = list(self._decode_touchpoints(tx, [r.payload for r in records]))
        batch: list[tuple[int, Record]] = []
        next_offsets = dict(positions)
        poison: list[DeadLetterRow] = []
        for record, item in zip(records, decoded, strict=True):
            partition = record.partition
            if record.offset >= next_offsets.get(partition, 0):
                next_offsets[partition] = record.offset + 1
            if item is None:  # a repeated event_id (drop_repeated_ids)
                continue
            if isinstance(item, CodecError):
                poison.append(
                    (
                        "process",
                        f"{stream}[{partition}]@{record.offset}",
                        None,
                        None,
                        "(payload)",
                        str(item),
                        record.payload.hex(),
                    )
                )
                continue
            batch.append((partition, item))
        return batch, poison, next_offsets

    def _decode_touchpoints(
        self, tx: UnitOfWork, payloads: list[bytes]
    ) -> Sequence[Touchpoint | CodecError | None]:
        decoded = self.codec.decode_many(payloads)
        if self.drop_repeated_ids:
            return _drop_repeats(tx, decoded)
        return decoded

    def _commit(self, tx: UnitOfWork, outcome: Outcome, stream: str) -> None:
        """Steps 2–5 of the commit order: profiles and timers, outbox, KPIs, clocks."""
        changed = outcome.profiles
        tx.save_profiles(list(changed.values()))
        self.cache.keep(changed)
        if self.rules is not None:
            partition_of = outcome.partition_of
            rows: list[tuple[str, str, Micros, int]] = []
            arm = self.timers.arm
            for customer_id, armed in outcome.timers.items():
                partition = partition_of[customer_id]
                arm(customer_id, partition, armed)
                rows.extend((customer_id, r, due, partition) for r, due in armed.items())
            tx.save_timers(list(outcome.timers), rows)
        triggers = outcome.triggers
        if triggers:
            pairs = list(zip(triggers, self.trigger_codec.encode_many(triggers), strict=True))
            held = [p for p in pairs if p[0].arm == CONTROL]
            if held:
                # the control arm is recorded, never delivered: marked published,
                # so the relay never moves it, and kept off the triggers stream
                pairs = [p for p in pairs if p[0].arm != CONTROL]
                tx.add_outbox(held, published=True)
            tx.add_outbox(pairs, published=self.publish_to is not None)
            if self.publish_to is not None:
                tx.publish_triggers(pairs, self.publish_to)
        if outcome.conversions:
            tx.save_conversions(outcome.conversions)
        kpis = outcome.kpis
        kpis.count_triggers(triggers)
        tx.save_kpis(kpis.finish())
        if outcome.clocks:
            tx.save_partition_clocks(self.consumer, stream, outcome.clocks)
            tx.save_clock(self.consumer, max(outcome.clocks.values()))
        if outcome.models:
            tx.save_partition_models(self.consumer, stream, outcome.models)
            self._models.update(outcome.models)


def _decode_control(payload: bytes) -> ClockRecord | ModelFitted | CodecError:
    """A control record, or the reason it is poison: a model_fitted record's
    parameters are checked here, so ``decide`` can take them as they come."""
    try:
        if not is_model_fitted(payload):
            return clock_codec().decode(payload)
        fitted = model_codec().decode(payload)
        model_of(fitted, None)
    except CodecError as exc:
        return exc
    except (ValueError, TypeError) as exc:
        return CodecError(f"model_fitted: {exc}")
    return fitted


def _drop_repeats(
    tx: UnitOfWork, decoded: list[Touchpoint | CodecError]
) -> list[Touchpoint | CodecError | None]:
    """None in place of every event whose id was applied before (or earlier
    in this batch); the first occurrence is the one kept."""
    fresh = tx.claim_event_ids([i.event_id for i in decoded if not isinstance(i, CodecError)])
    out: list[Touchpoint | CodecError | None] = []
    for item in decoded:
        if isinstance(item, CodecError):
            out.append(item)
        elif item.event_id in fresh:
            fresh.discard(item.event_id)
            out.append(item)
        else:
            out.append(None)
    return out
