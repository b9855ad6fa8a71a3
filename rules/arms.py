"""Which arm a trigger is in: ``treatment`` (delivered) or ``control`` (held out).

The arm is a stable hash of the rule id and the person, never a random draw:
a live run, every replay, a backtest and any cut of the log into batches put
the same customer in the same arm, and one customer stays in one arm of a rule
for good (a customer who flipped arms between triggers would blur the
comparison). BLAKE2b is in the standard library and its output is uniform, so
the first 8 bytes read as an integer and divided by 2**64 give a point of
[0, 1) that falls below ``holdout`` for that share of customers.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Arm = Literal["treatment", "control"]
TREATMENT: Final = "treatment"
CONTROL: Final = "control"
ARMS: Final = (TREATMENT, CONTROL)

_SCALE: Final = float(1 << 64)
_SEP: Final = "\x1f"


def position(rule_id: str, customer_id: str) -> float:
    """The customer's fixed point of [0, 1) for this rule."""
    digest = hashlib.blake2b(f"{rule_id}{_SEP}{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_of(rule_id: str, customer_id: str, holdout: float) -> Arm:
    """``control`` for the ``holdout`` share of customers, else ``treatment``.
    Without a holdout no hash is computed (the hot path of most rules)."""
    if holdout <= 0.0:
        return TREATMENT
    return CONTROL if position(rule_id, customer_id) < holdout else TREATMENT
