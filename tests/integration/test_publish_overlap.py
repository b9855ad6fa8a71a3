"""Publishing appends each batch on a thread of its own while the next one is
encoded (``Publisher._overlapped``): batches must still land in input order,
the report must count every batch, and an append that fails must stop the
publish with its error, after the batches before it and before any after it."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest

from engage.runtime import Engine
from events.errors import StorageError
from events.log import Log
from events.ports import AppendResult, Entry
from events.publisher import BATCH
from tests.helpers import event, lines

CUSTOMERS = 7


def _lines(count: int) -> list[str]:
    return lines(
        *(
            event(
                f"e{i:06d}",
                f"c{i % CUSTOMERS}",
                "web_visit",
                f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                url="/",
            )
            for i in range(count)
        )
    )


def _logged(engine: Engine) -> dict[str, list[str]]:
    """Each customer's event ids in log order (one customer: one partition)."""
    with psycopg.connect(engine.dsn) as conn:
        rows = conn.execute(
            'SELECT customer_id, event_id FROM touchpoints ORDER BY partition, "offset"'
        ).fetchall()
    found: dict[str, list[str]] = {}
    for customer, event_id in rows:
        found.setdefault(customer, []).append(event_id)
    return found


def test_batches_land_in_input_order_and_all_are_counted(engine: Engine) -> None:
    raw = _lines(2 * BATCH + 300)
    raw.insert(BATCH + 10, "{not json")  # a rejection in the second batch
    raw.append(raw[5])  # a repeat of the first batch's, in the third
    report = engine.publisher().publish_lines(raw, "test")
    assert (report.accepted, report.duplicates, report.rejected) == (2 * BATCH + 300, 1, 1)
    assert report.duplicate_ids == ["e000005"]
    assert report.rejections[0].line_no == BATCH + 11
    logged = _logged(engine)
    expected = {
        f"c{c}": [f"e{i:06d}" for i in range(c, 2 * BATCH + 300, CUSTOMERS)]
        for c in range(CUSTOMERS)
    }
    assert logged == expected


class _FailingSecondAppend:
    """The log, failing its second append (a database that goes away mid-publish
    cannot be provoked at a chosen batch; this is the one stand-in)."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self.calls = 0

    def append(self, stream: str, entries: Sequence[Entry]) -> AppendResult:
        self.calls += 1
        if self.calls == 2:
            raise StorageError("appending to the touchpoints log failed: the server went away")
        return self._log.append(stream, entries)


def test_a_failed_append_stops_the_publish_after_the_batches_before_it(engine: Engine) -> None:
    publisher = engine.publisher()
    failing = _FailingSecondAppend(publisher.log)
    publisher.log = failing  # type: ignore[assignment]
    with pytest.raises(StorageError, match="server went away"):
        publisher.publish_lines(_lines(3 * BATCH), "test")
    assert failing.calls == 2  # the third batch was never appended
    logged = sorted(i for ids in _logged(engine).values() for i in ids)
    assert logged == [f"e{i:06d}" for i in range(BATCH)]
    # and the publisher is usable again: the same input, whole, goes through
    publisher.log = failing._log  # type: ignore[assignment]
    report = publisher.publish_lines(_lines(3 * BATCH), "test")
    assert (report.accepted, report.duplicates) == (2 * BATCH, BATCH)
