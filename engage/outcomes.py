"""The outcomes report for an engine: one function for ``engage outcomes``
and ``GET /v1/outcomes``, so both list the same rules with the same numbers."""

from __future__ import annotations

from typing import Any

from engage.runtime import Engine
from events.model import Micros
from projections.adapters.postgres_outcomes import read_outcomes
from projections.outcomes import report


def outcomes_report(
    engine: Engine, rule_id: str | None = None, since: Micros | None = None
) -> list[dict[str, Any]]:
    """Per rule: the loaded rules with a goal or a holdout first (even before
    they fired), then any other rule that fired."""
    stats = read_outcomes(engine.dsn, rule_id, since)
    loaded = [] if engine.rules is None else engine.rules.rules
    first = [r.id for r in loaded if (r.goal is not None or r.holdout) and rule_id in (None, r.id)]
    return report(stats, first)
