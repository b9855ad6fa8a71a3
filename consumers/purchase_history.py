"""Every customer's purchase statistics as of some instants, read through the ``Log`` port.

``engage model fit`` needs, per customer, the stats the fold keeps for the
predictions (``projections.predictions.PurchaseStats``) as of the fit's
``--as-of`` and, for a holdout check, as of the holdout's end. They come from
the log rather than from the profiles so that any past instant can be asked
for, exactly as ``engage profile --as-of`` does: an instant holds the events
that occurred at or before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from events.codec import CodecError, TouchpointCodec
from events.log import Log, read_stream
from events.model import Micros
from projections.predictions import PurchaseStats, add_purchase


def purchase_stats(
    log: Log,
    stream: str,
    codec: TouchpointCodec,
    instants: Sequence[Micros],
    *,
    drop_repeated_ids: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, PurchaseStats]]:
    """Per instant, each customer's stats over the purchases that occurred at or
    before it, in one pass over the log. ``drop_repeated_ids`` skips a purchase
    whose event id was already seen (the Kafka log keeps redeliveries; the
    PostgreSQL log never holds one twice)."""
    stats: list[dict[str, PurchaseStats]] = [{} for _ in instants]
    seen: set[str] = set()
    for records in read_stream(log, stream, on_progress):
        for event in codec.decode_many([r.payload for r in records]):
            if isinstance(event, CodecError) or event.type != "purchase":
                continue
            if drop_repeated_ids:
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
            at = event.occurred_at
            amount = float(event.properties["amount"])
            for instant, by_customer in zip(instants, stats, strict=True):
                if at <= instant:
                    key = event.customer_id
                    by_customer[key] = add_purchase(by_customer.get(key), at, amount)
    return stats
