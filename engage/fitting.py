"""Fitting the churn and lifetime-value model and putting it on the log.

``engage model fit``, the tests and ``bench/pipeline.py --predictions`` all
fit the same way: every customer's purchase statistics read from the log as
of an instant (``consumers.purchase_history``), the maximum-likelihood fit
(``projections.model_fit``, NumPy and SciPy, imported only here), the next
version stored in ``model_fits``, and a ``model_fitted`` record appended to
every partition of the touchpoints log (``events.control``), where the
processor, and later every replay, adopts it at one position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engage.errors import ConfigError
from engage.runtime import Engine
from events.log import TOUCHPOINTS
from events.model import Micros

if TYPE_CHECKING:
    from projections.adapters.model_fits import StoredFit
    from projections.model_fit import Holdout


def fit_model(
    engine: Engine,
    as_of: Micros,
    holdout_end: Micros | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[StoredFit, Holdout | None]:
    """Fit on the purchases that occurred at or before ``as_of``, store the
    next version and append it to the log; with ``holdout_end``, also compare
    predicted and actual repeat purchases up to it."""
    from consumers.purchase_history import purchase_stats
    from events.control import model_entries
    from projections.adapters.model_fits import PostgresModelFits
    from projections.model_fit import Customers, fit, holdout
    from projections.predictions import TIME_UNIT, UNIT

    if holdout_end is not None and holdout_end <= as_of:
        raise ConfigError("--holdout-end must be later than --as-of")
    instants = [as_of] if holdout_end is None else [as_of, holdout_end]
    stats = purchase_stats(
        engine.stream,
        TOUCHPOINTS,
        engine.codec,
        instants,
        drop_repeated_ids=engine.kafka is not None,
        on_progress=on_progress,
    )
    # a customer whose first purchase is at the very instant was observed for
    # no time: a factor of 1 in the likelihood, but a zero T the fit refuses
    ids = sorted(i for i, s in stats[0].items() if s.first_at < as_of)
    calibration = Customers.from_stats([stats[0][i] for i in ids], as_of)
    result = fit(calibration)
    with PostgresModelFits(engine.dsn) as fits:
        stored = fits.save(result, as_of)
    params = stored.params.to_json()
    del params["time_unit"]
    engine.stream.append(
        TOUCHPOINTS,
        model_entries(
            stored.version, params, stored.as_of, engine.partitions, stored.fitted_at, TIME_UNIT
        ),
    )
    check = None
    if holdout_end is not None:
        actual = [stats[1][i].x - stats[0][i].x for i in ids]
        check = holdout(calibration, actual, (holdout_end - as_of) / UNIT, result.params)
    return stored, check
