"""Reading a whole stream through the ``Log`` port, for backtests and exports.

Only the port's ``read``/``heads`` are used, so this works on any log adapter
(PostgreSQL now, Kafka later).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from events.codec import CodecError, TouchpointCodec
from events.log import Log, LogRecord
from events.model import Touchpoint

CHUNK = 20_000
"""Records per partition per read: large enough to amortise the round trip and
the batched Avro decode, small enough to keep memory flat."""


def read_stream(
    log: Log, stream: str, on_progress: Callable[[int], None] | None = None
) -> Iterator[list[LogRecord]]:
    """Every record on ``stream`` up to its head at the start, in chunks."""
    heads = log.heads(stream)
    positions = {p: 0 for p, head in heads.items() if head > 0}
    done = 0
    while positions:
        records = log.read(stream, positions, CHUNK)
        if not records:
            break
        for record in records:
            positions[record.partition] = record.offset + 1
        positions = {p: o for p, o in positions.items() if o < heads[p]}
        done += len(records)
        if on_progress is not None:
            on_progress(done)
        yield records


def touchpoints_in_time_order(
    log: Log,
    stream: str,
    codec: TouchpointCodec,
    on_progress: Callable[[int], None] | None = None,
) -> list[Touchpoint]:
    """Every decodable touchpoint, merged across partitions by ``occurred_at``
    while each partition keeps its log order: the order in which a live run
    meets a customer's events, so a backtest folds them the same way."""
    by_partition: dict[int, list[Touchpoint]] = {}
    for records in read_stream(log, stream, on_progress):
        decoded = codec.decode_many([r.payload for r in records])
        for record, item in zip(records, decoded, strict=True):
            if not isinstance(item, CodecError):
                by_partition.setdefault(record.partition, []).append(item)
    return list(heapq.merge(*by_partition.values(), key=lambda e: e.occurred_at))
