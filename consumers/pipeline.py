"""The one processing pipeline: decode → evolve → evaluate → write.

The embedded processor loop and the Faust agents both hand a batch of log
records to ``Pipeline.process`` inside a store transaction; nothing else
knows how a batch becomes profiles.

Commit order, all inside the caller's single transaction:
1. poison records (undecodable) go to the dead-letter store;
2. changed profiles are upserted;
3. trigger events go to the outbox;
4. the processor clock advances (never backwards);
5. the consumer offsets advance past the batch.
The transaction commits after step 5; a crash anywhere before leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from events.codec import CodecError, TouchpointCodec
from events.log import TOUCHPOINTS, LogRecord
from events.model import Micros, Touchpoint, TriggerEvent
from projections.evolve import apply
from projections.profile import Profile
from projections.store import DeadLetterRow, StoreTransaction

DEFAULT_CONSUMER = "engage-processor"

Evaluator = Callable[[Profile | None, Profile, Touchpoint, Micros], list[TriggerEvent]]
"""(before, after, event, now) -> triggers; ``before`` is None for a new customer."""


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
        evaluator: Evaluator | None = None,
    ) -> None:
        self.codec = codec
        self.consumer = consumer
        self.evaluator = evaluator

    def process(
        self,
        tx: StoreTransaction,
        records: Sequence[LogRecord],
        positions: Mapping[int, int],
        now: Micros | None = None,
        stream: str = TOUCHPOINTS,
    ) -> BatchResult:
        """Apply one batch; ``positions`` are the offsets the batch was read from."""
        result = BatchResult(records=len(records))
        decoded = self.codec.decode_many([r.payload for r in records])
        by_customer: dict[str, list[Touchpoint]] = {}
        poison: list[DeadLetterRow] = []
        clock = tx.get_clock(self.consumer)
        batch_max: Micros | None = None
        for record, item in zip(records, decoded, strict=True):
            if isinstance(item, CodecError):
                poison.append(
                    (
                        "process",
                        f"{stream}[{record.partition}]@{record.offset}",
                        None,
                        None,
                        "(payload)",
                        str(item),
                        record.payload.hex(),
                    )
                )
                continue
            bucket = by_customer.get(item.customer_id)
            if bucket is None:
                by_customer[item.customer_id] = [item]
            else:
                bucket.append(item)
            if batch_max is None or item.occurred_at > batch_max:
                batch_max = item.occurred_at
        result.poison = len(poison)
        tx.dead_letter(poison)

        candidates = [c for c in (clock, batch_max, now) if c is not None]
        new_clock = max(candidates) if candidates else None
        stored = tx.load_profiles(list(by_customer))
        changed: list[Profile] = []
        evaluate = self.evaluator
        for customer_id, events in by_customer.items():
            before = stored.get(customer_id)
            profile = Profile(customer_id) if before is None else before
            for event in events:
                if evaluate is None:
                    apply(profile, event)
                else:
                    previous = profile.copy() if profile.event_count else None
                    apply(profile, event)
                    moment = event.occurred_at if new_clock is None else new_clock
                    result.triggers.extend(evaluate(previous, profile, event, moment))
            result.events += len(events)
            changed.append(profile)
        result.profiles = len(changed)
        tx.save_profiles(changed)
        tx.add_outbox(result.triggers)
        if new_clock is not None:
            tx.save_clock(self.consumer, new_clock)
            result.clock = new_clock
        next_offsets = dict(positions)
        for record in records:
            if record.offset + 1 > next_offsets.get(record.partition, 0):
                next_offsets[record.partition] = record.offset + 1
        tx.save_offsets(self.consumer, stream, next_offsets)
        return result
