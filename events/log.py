"""The log's streams and reading a whole stream through the ``Log`` port
(declared, with its records, in ``events.ports`` and re-exported here).

The log is an append-only, partitioned log of encoded records.

Two adapters implement it: PostgreSQL (``events.adapters.postgres``, the
embedded default) and Kafka (``events.adapters.kafka``, scale-out). Consumers
never store their offsets in the log: offsets are committed to PostgreSQL in
the same transaction as the state they produced (``projections.ports``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

from events.ports import AppendResult, Entry, Log, LogRecord

TOUCHPOINTS = "touchpoints"
TRIGGERS = "triggers"

__all__ = [
    "READ_CHUNK",
    "TOUCHPOINTS",
    "TRIGGERS",
    "AppendResult",
    "Entry",
    "Log",
    "LogRecord",
    "lag",
    "read_stream",
]


def lag(
    heads: Mapping[int, int],
    offsets: Mapping[int, int],
    partitions: Collection[int] | None = None,
) -> int:
    """Records written but not yet committed by a consumer: per partition, the
    head minus the consumer's committed offset (0 if none), never below 0,
    summed over ``partitions`` (default: all). The one definition the
    processor, ``engage status`` and the HTTP status and metrics share."""
    return sum(
        max(0, head - offsets.get(p, 0))
        for p, head in heads.items()
        if partitions is None or p in partitions
    )


READ_CHUNK = 20_000
"""Records per partition per read in ``read_stream``: large enough to amortise
the round trip and the batched Avro decode, small enough to keep memory flat."""


def read_stream(
    log: Log,
    stream: str,
    on_progress: Callable[[int], None] | None = None,
    partitions: Collection[int] | None = None,
) -> Iterator[list[LogRecord]]:
    """Every record on ``stream`` (or on some of its partitions) up to its head
    at the start, in chunks. Only the port's ``read``/``heads`` are used, so
    backtests, exports and an adapter's own scans work on any log."""
    heads = log.heads(stream)
    positions = {
        p: 0 for p, head in heads.items() if head > 0 and (partitions is None or p in partitions)
    }
    done = 0
    while positions:
        records = log.read(stream, positions, READ_CHUNK)
        if not records:
            break
        for record in records:
            positions[record.partition] = record.offset + 1
        positions = {p: o for p, o in positions.items() if o < heads[p]}
        done += len(records)
        if on_progress is not None:
            on_progress(done)
        yield records
