"""What ``engage serve`` configures: limits, pool size and the background work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from consumers.webhooks import DeliveryPolicy
from rules import RuleSet

MAX_BODY: Final = 5 * 1024 * 1024
MAX_EVENTS: Final = 1_000


@dataclass
class ServeConfig:
    pool_size: int = 4
    max_body: int = MAX_BODY
    max_events: int = MAX_EVENTS
    process: bool = True
    deliver: bool = True
    rules: RuleSet | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    poll_s: float = 1.0
    max_ingest_inflight: int = 32
    """Segment-compatible ingest requests handled at once; more get 429."""
