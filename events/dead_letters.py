"""Dead letters: where every rejected input goes, with its raw text.

The ports (``DeadLetterSink``, ``DeadLetterStore``) and the row shapes are
declared in ``events.ports`` and re-exported here.

Ingest (bad lines) and processing (undecodable records) both write here, so
the row shape is defined once, beside the port, not in an adapter.
"""

from __future__ import annotations

import hashlib
from typing import Final

from events.ports import DeadLetter, DeadLetterRow, DeadLetterSink, DeadLetterStore

__all__ = ["RAW_KEEP", "DeadLetter", "DeadLetterRow", "DeadLetterSink", "DeadLetterStore", "capped"]

RAW_KEEP: Final = 16 * 1024
"""Characters of raw text kept per dead letter: enough to see what was wrong;
twenty 5 MiB junk bodies must not make one DLQ page 100 MB."""


def capped(raw: str) -> tuple[str, int, str]:
    """(the first ``RAW_KEEP`` characters, the full size in UTF-8 bytes, its
    SHA-256): what is kept of a rejected input, and what identifies all of it."""
    data = raw.encode("utf-8", errors="surrogatepass")
    kept = raw if len(raw) <= RAW_KEEP else raw[:RAW_KEEP]
    return kept, len(data), hashlib.sha256(data).hexdigest()
