"""Arbitrary JSON carried inside an Avro record as a string.

Purchase items and trigger details have no fixed shape, so they travel as
JSON text in a string field.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

from events.codec.schemas import CodecError

# Arbitrary JSON (purchase items, trigger details) travels as an Avro string.
# stdlib json writes it because it is exact for every Python value it accepts
# (ints of any size); orjson reads it because it is ~5x faster, except where it
# is not exact (ints beyond 64 bits become floats, NaN is not JSON to it).
_BIG_INT: Final = re.compile(r"\d{19}")


def dumps(value: Any, what: str) -> str:
    """JSON text of ``value``; ``what`` names it in the error."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CodecError(f"{what} is not JSON-serialisable: {exc}") from exc


def loads(text: str) -> Any:
    """The value of JSON text, exact for integers of any size."""
    if _BIG_INT.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
