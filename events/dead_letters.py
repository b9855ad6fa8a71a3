"""The dead-letter port: where every rejected input goes, with its raw text.

Ingest (bad lines) and processing (undecodable records) both write here, so
the row shape is defined once, beside the port, not in an adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

DeadLetterRow = tuple[str, str | None, int | None, str | None, str, str, str]
"""(stage, source, line_no, event_id, field, reason, raw)."""


class DeadLetterSink(Protocol):
    """What a writer of dead letters needs of the store."""

    def add(self, rows: Sequence[DeadLetterRow]) -> None: ...


RAW_KEEP: Final = 16 * 1024
"""Characters of raw text kept per dead letter: enough to see what was wrong;
twenty 5 MiB junk bodies must not make one DLQ page 100 MB."""


SEALED_PREFIX: Final = "sealed:v1:"
"""A raw text sealed with a person's key (``events.sealing``): kept whole,
since a cut ciphertext opens to nothing; it was capped before sealing."""


def capped(raw: str) -> tuple[str, int, str]:
    """(the first ``RAW_KEEP`` characters, the full size in UTF-8 bytes, its
    SHA-256): what is kept of a rejected input, and what identifies all of it."""
    data = raw.encode("utf-8", errors="surrogatepass")
    kept = raw if len(raw) <= RAW_KEEP or raw.startswith(SEALED_PREFIX) else raw[:RAW_KEEP]
    return kept, len(data), hashlib.sha256(data).hexdigest()
