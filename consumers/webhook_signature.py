"""Webhook signatures: HMAC-SHA256 over ``"{t}.{body}"`` with the subscription's
secret, sent as ``Engage-Signature: t=<unix seconds>,v1=<hex>``.

The timestamp is inside the signed text, so a captured delivery cannot be
replayed later than the receiver's tolerance (5 minutes by default) without
breaking the signature. Receivers verify with ``verify`` (or the same few
lines in any language) and use ``trigger_id`` as their idempotency key, since
delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "Engage-Signature"
TOLERANCE_S: Final = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, header: str | None, body: bytes, now: float, tolerance: float = TOLERANCE_S
) -> int:
    """Check a delivery; returns its timestamp or raises ``SignatureError``."""
    if not header:
        raise SignatureError(f"no {HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {HEADER} header")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError(f"{HEADER} has no valid t= timestamp") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is outside the {tolerance:.0f}s tolerance")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise SignatureError("signature does not match")
    return timestamp
