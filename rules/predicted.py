"""Timers whose due instant is solved from the fitted model: ``due: p_alive < 0.3``.

``predicted-churn`` fires at the instant a customer's ``p_alive`` (BG/NBD,
``projections.predictions``) falls below a threshold if no purchase comes.
That instant has a closed form (``p_alive_crossing``), so the timer is armed
at it like any other: nothing polls. It moves when the customer buys on a
new day (x and t_x change) and when a new model is adopted on the
customer's partition (the pipeline then re-arms every repeat customer).

The quiet spell is the last purchase: once fired, the timer stays quiet
until a new purchase. A crossing before the model was adopted
(``Model.adopted_at``) fired under no model, so it is not armed: a customer
already below the threshold when a model arrives is ``churn_risk: high`` in
the profile, but nothing "falls" for the timer to fire on.
"""

from __future__ import annotations

from typing import Any

from events.model import Micros
from projections.predictions import Model, p_alive_at
from projections.profile import Profile
from rules.model import Solver

ANCHOR = "last_purchase_at"
"""What names a predicted-churn spell: the last purchase before the silence."""


def p_alive_below(threshold: float) -> Solver:
    """The solver for ``due: p_alive < threshold``."""
    if not 0 < threshold < 1:
        raise ValueError(f"the p_alive threshold must be between 0 and 1, got {threshold!r}")

    def solve(profile: Profile, model: Model | None) -> Micros | None:
        if model is None:
            return None
        days = profile.purchase_days
        if days is None or len(days) < 2:
            return None  # no repeat purchase day: p_alive stays 1
        first, last = profile.first_purchase_at, profile.last_purchase_at
        if first is None or last is None:
            return None
        at = model.crossing(len(days) - 1, first, last, threshold)
        if at is None or (model.adopted_at is not None and at < model.adopted_at):
            return None
        return at

    return solve


def model_facts(profile: Profile, due: Micros, model: Model) -> dict[str, Any]:
    """What a predicted-churn trigger tells marketing beside the due instant."""
    days = profile.purchase_days or []
    first, last = profile.first_purchase_at, profile.last_purchase_at
    facts: dict[str, Any] = {"model_version": model.version}
    if len(days) >= 2 and first is not None and last is not None:
        facts["p_alive"] = p_alive_at(len(days) - 1, first, last, due, model.params)
        facts["repeat_purchases"] = len(days) - 1
    return facts
