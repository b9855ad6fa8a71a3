"""Reading a whole history through the ``Log`` port, for backtests."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from events.codec import CodecError, TouchpointCodec
from events.control import is_model_fitted, model_codec
from events.log import Log, read_stream
from events.model import ModelFitted, Touchpoint


def touchpoints_in_time_order(
    log: Log,
    stream: str,
    codec: TouchpointCodec,
    on_progress: Callable[[int], None] | None = None,
    models: list[ModelFitted] | None = None,
) -> list[Touchpoint]:
    """Every decodable touchpoint, merged across partitions by ``occurred_at``
    while each partition keeps its log order: the order in which a live run
    meets a customer's events, so a backtest folds them the same way.

    ``models``, when given, receives each fitted model once (its copy on
    partition 0), in log order."""
    by_partition: dict[int, list[Touchpoint]] = {}
    for records in read_stream(log, stream, on_progress):
        decoded = codec.decode_many([r.payload for r in records])
        for record, item in zip(records, decoded, strict=True):
            if not isinstance(item, CodecError):
                by_partition.setdefault(record.partition, []).append(item)
            elif models is not None and record.partition == 0 and is_model_fitted(record.payload):
                try:
                    models.append(model_codec().decode(record.payload))
                except CodecError:
                    continue
    return list(heapq.merge(*by_partition.values(), key=lambda e: e.occurred_at))
