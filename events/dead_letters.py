"""The dead-letter port: where every rejected input goes, with its raw text.

Ingest (bad lines) and processing (undecodable records) both write here, so
the row shape is defined once, beside the port, not in an adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

DeadLetterRow = tuple[str, str | None, int | None, str | None, str, str, str]
"""(stage, source, line_no, event_id, field, reason, raw)."""


class DeadLetterSink(Protocol):
    """What a writer of dead letters needs of the store."""

    def add(self, rows: Sequence[DeadLetterRow]) -> None: ...
