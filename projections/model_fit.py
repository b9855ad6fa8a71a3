"""Fitting BG/NBD and Gamma-Gamma by maximum likelihood, vectorised with NumPy and SciPy.

The closed forms the profile evaluates per customer are in
``projections.predictions`` (pure, no NumPy); this module fits the population
parameters they take, over arrays with one row per customer, for ``engage
model fit``. The fit is unit-agnostic: ``alpha`` comes out in the unit of
``t_x`` and ``T`` (the CDNOW test fits in weeks, ``engage`` in days).

Why it is fast enough for a million customers: both log-likelihoods are
summed over customers with one analytic gradient, so the optimiser (SciPy's
L-BFGS-B on the logs of the parameters, which keeps them positive) needs one
evaluation per step rather than one per parameter; and every term that
depends on a customer only through its repeat count ``x`` (the ``gammaln``
and ``digamma`` terms) is evaluated once per distinct ``x`` and weighted by
how many customers have it.

Why it is numerically stable: everything is summed in logs (``gammaln``, not
``gamma``; BG/NBD's ``log(A_3 + A_4)`` as ``A_3 + softplus(A_4 - A_3)``), so
long silences and large counts underflow nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1, logit

from events.errors import EngageError
from events.model import Micros
from projections.predictions import ModelParams, PurchaseStats, expected_purchases

Array = npt.NDArray[np.float64]


class FitError(EngageError):
    """Too little data, or an optimiser that did not converge."""


@dataclass(frozen=True, slots=True)
class Customers:
    """One row per customer: repeat transactions ``x``, recency ``t_x``, age ``T``
    (one time unit) and the mean value of the repeat transactions."""

    x: Array
    t_x: Array
    T: Array
    mean_value: Array

    def __post_init__(self) -> None:
        n = len(self.x)
        if not (len(self.t_x) == len(self.T) == len(self.mean_value) == n):
            raise ValueError("x, t_x, T and mean_value must have one row per customer")
        if n and (
            np.any(self.x < 0)
            or np.any(self.x != np.floor(self.x))
            or np.any(self.t_x < 0)
            or np.any(self.t_x > self.T)
        ):
            raise ValueError("need whole x >= 0 and 0 <= t_x <= T for every customer")

    @classmethod
    def of(cls, x: Any, t_x: Any, T: Any, mean_value: Any | None = None) -> Customers:
        """From anything array-like (lists, columns of a file)."""
        xs = np.asarray(x, dtype=np.float64)
        return cls(
            xs,
            np.asarray(t_x, dtype=np.float64),
            np.asarray(T, dtype=np.float64),
            np.zeros_like(xs) if mean_value is None else np.asarray(mean_value, dtype=np.float64),
        )

    @classmethod
    def from_stats(cls, stats: Iterable[PurchaseStats], as_of: Micros) -> Customers:
        """As of ``as_of``, in days (``predictions.UNIT``): the stats must hold
        only purchases before it."""
        rows = [(s.x, s.t_x(), s.age(as_of), s.mean_value) for s in stats]
        if not rows:
            return cls.of([], [], [], [])
        x, t_x, T, mean = zip(*rows, strict=True)
        return cls.of(x, t_x, T, mean)

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float


@dataclass(frozen=True, slots=True)
class ModelFit:
    """A fit: the parameters the profiles use, and how well they fit."""

    params: ModelParams
    bgnbd_log_likelihood: float
    gamma_gamma_log_likelihood: float
    customers: int
    repeat_customers: int
    """Customers with x > 0 and a positive mean value: the Gamma-Gamma sample."""

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params.to_json(),
            "bgnbd_log_likelihood": self.bgnbd_log_likelihood,
            "gamma_gamma_log_likelihood": self.gamma_gamma_log_likelihood,
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
        }


def fit(customers: Customers) -> ModelFit:
    """Fit both models; ``customers`` in days (``predictions.TIME_UNIT``)."""
    bgnbd = fit_bgnbd(customers.x, customers.t_x, customers.T)
    repeat = (customers.x > 0) & (customers.mean_value > 0)
    gg = fit_gamma_gamma(customers.x[repeat], customers.mean_value[repeat])
    params = ModelParams(bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b, gg.p, gg.q, gg.gamma)
    return ModelFit(
        params, bgnbd.log_likelihood, gg.log_likelihood, len(customers), int(repeat.sum())
    )


# -- BG/NBD -------------------------------------------------------------------------


def bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: Array, t_x: Array, T: Array
) -> Array:
    """Each customer's log-likelihood (FHL 2005 eq. 6), unvectorised by ``x``:
    the plain definition the fit's grouped sum is tested against."""
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x)
    return np.asarray(a1 + a2 + np.where(x > 0, np.logaddexp(a3, a4), a3), dtype=np.float64)


def _bgnbd_objective(x: Array, t_x: Array, T: Array) -> Callable[[Array], tuple[float, Array]]:
    """The mean negative log-likelihood and its gradient in log-parameters."""
    n = len(x)
    xs, counts = np.unique(x, return_counts=True)
    w = counts.astype(np.float64)
    repeat = x > 0
    xr, tr, Tr = x[repeat], t_x[repeat], T[repeat]
    T0 = T[~repeat]

    def objective(theta: Array) -> tuple[float, Array]:
        r, alpha, a, b = np.exp(theta)
        # terms of x alone, once per distinct x
        a12 = (
            gammaln(r + xs)
            - gammaln(r)
            + r * np.log(alpha)
            + gammaln(a + b)
            + gammaln(b + xs)
            - gammaln(b)
            - gammaln(a + b + xs)
        )
        ll = float(w @ a12)
        g_r = float(w @ (digamma(r + xs) - digamma(r))) + n * np.log(alpha)
        g_alpha = n * r / alpha
        g_a = float(w @ (digamma(a + b) - digamma(a + b + xs)))
        g_b = float(w @ (digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs)))
        # customers without a repeat: A_3 alone
        log_t0 = np.log(alpha + T0)
        ll -= r * float(log_t0.sum())
        g_r -= float(log_t0.sum())
        g_alpha -= r * float((1.0 / (alpha + T0)).sum())
        # with repeats: A_3 + softplus(A_4 - A_3), A_4's share of the mix is sigmoid(d)
        log_T = np.log(alpha + Tr)
        log_t = np.log(alpha + tr)
        log_b = np.log(b + xr - 1)
        rx = r + xr
        d = np.log(a) - log_b + rx * (log_T - log_t)
        e = np.exp(-np.abs(d))
        share = np.where(d >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        ll += float((-rx * log_T + np.maximum(d, 0.0) + np.log1p(e)).sum())
        g_r -= float(((1.0 - share) * log_T + share * log_t).sum())
        g_alpha -= float((rx * ((1.0 - share) / (alpha + Tr) + share / (alpha + tr))).sum())
        g_a += float(share.sum()) / a
        g_b -= float((share / (b + xr - 1)).sum())
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        return -ll / n, -grad / n

    return objective


def fit_bgnbd(x: Any, t_x: Any, T: Any) -> BgNbd:
    """Maximum-likelihood r, alpha, a, b; ``alpha`` in the unit of ``t_x`` and ``T``."""
    c = Customers.of(x, t_x, T)
    if len(c) < 4 or not np.any(c.x > 0) or not np.all(c.T > 0):
        raise FitError(
            "BG/NBD needs at least 4 customers, some with a repeat purchase, all observed "
            "for some time after their first purchase"
        )
    objective = _bgnbd_objective(c.x, c.t_x, c.T)

    def by_mean_and_size(phi: Array) -> tuple[float, Array]:
        """The objective over (log r, log alpha, logit m, log kappa), where the
        drop-out p ~ Beta(a, b) has mean m = a/(a+b) and size kappa = a+b."""
        value, g = objective(_ab(phi))
        m = float(expit(phi[2]))
        return value, np.array([g[0], g[1], g[2] * (1.0 - m) - g[3] * m, g[2] + g[3]])

    start = np.array([0.0, np.log(float(np.mean(c.T))), 0.0, np.log(2.0)])
    bounds = [
        (None, None),
        (None, None),
        (float(logit(MIN_DROPOUT)), None),
        (None, np.log(MAX_BETA_SIZE)),
    ]
    theta = _ab(_minimise(by_mean_and_size, start, "BG/NBD", bounds))
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    ll = float(-objective(theta)[0] * len(c))
    return BgNbd(r, alpha, a, b, ll)


MAX_BETA_SIZE = 1e6
"""The largest a + b the BG/NBD fit returns. When every customer drops out
with about the same probability the likelihood keeps rising as a and b grow
together (the Beta narrows to a point); the fit then stops at this size, where
the drop-out's spread (a standard deviation under 0.0005) no longer changes
any prediction, instead of running off to infinity."""


MIN_DROPOUT = 1e-6
"""The smallest mean drop-out probability a/(a+b) the BG/NBD fit returns. When
no customer in the history looks lapsed (a short history, or one that ends
while everybody is still buying) the likelihood keeps rising as the drop-out
goes to 0: the model becomes the plain NBD, where everyone stays. The fit
then stops at this floor, where one drop-out in a million purchases changes no
prediction, instead of running off to 0 and failing."""


def _ab(phi: Array) -> Array:
    """(log r, log alpha, logit m, log kappa) -> (log r, log alpha, log a, log b)."""
    log_kappa = phi[3]
    return np.array(
        [
            phi[0],
            phi[1],
            log_kappa - np.logaddexp(0.0, -phi[2]),
            log_kappa - np.logaddexp(0.0, phi[2]),
        ]
    )


# -- Gamma-Gamma ---------------------------------------------------------------------


def gamma_gamma_log_likelihood(p: float, q: float, gamma: float, x: Array, m: Array) -> Array:
    """Each customer's log-likelihood of the mean ``m`` of ``x`` transactions
    (Fader and Hardie 2013, eq. 3): the plain definition, for the tests."""
    return np.asarray(
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(gamma)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(gamma + x * m),
        dtype=np.float64,
    )


def _gamma_gamma_objective(x: Array, m: Array) -> Callable[[Array], tuple[float, Array]]:
    n = len(x)
    xs, counts = np.unique(x, return_counts=True)
    w = counts.astype(np.float64)
    log_m = np.log(m)
    s1 = float((x * (log_m + np.log(x))).sum())  # the coefficient of p
    s2 = float(log_m.sum())

    def objective(theta: Array) -> tuple[float, Array]:
        p, q, gamma = np.exp(theta)
        px = p * xs
        log_mix = np.log(gamma + x * m)
        ll = (
            float(w @ (gammaln(px + q) - gammaln(px)))
            - n * gammaln(q)
            + n * q * np.log(gamma)
            + p * s1
            - s2
            - float(((p * x + q) * log_mix).sum())
        )
        g_p = float(w @ (xs * (digamma(px + q) - digamma(px)))) + s1 - float((x * log_mix).sum())
        g_q = float(w @ digamma(px + q)) - n * digamma(q) + n * np.log(gamma) - float(log_mix.sum())
        g_gamma = n * q / gamma - float(((p * x + q) / (gamma + x * m)).sum())
        grad = np.array([g_p * p, g_q * q, g_gamma * gamma])
        return -ll / n, -grad / n

    return objective


def fit_gamma_gamma(x: Any, mean_value: Any) -> GammaGamma:
    """Maximum-likelihood p, q, gamma over customers with x > 0 and a positive mean."""
    xs = np.asarray(x, dtype=np.float64)
    m = np.asarray(mean_value, dtype=np.float64)
    if len(xs) < 3 or np.any(xs <= 0) or np.any(m <= 0):
        raise FitError(
            "Gamma-Gamma needs at least 3 customers with a repeat purchase of a positive value"
        )
    objective = _gamma_gamma_objective(xs, m)
    start = np.log([1.0, 1.0, float(np.mean(m))])
    theta = _minimise(objective, start, "Gamma-Gamma")
    p, q, gamma = (float(v) for v in np.exp(theta))
    return GammaGamma(p, q, gamma, float(-objective(theta)[0] * len(xs)))


_RESTARTS = 4


def _minimise(
    objective: Callable[[Array], tuple[float, Array]],
    start: Array,
    model: str,
    bounds: Sequence[tuple[float | None, float | None]] | None = None,
) -> Array:
    """L-BFGS-B to tight tolerances. At those it may stop on a line search that
    can gain nothing more; that is accepted where the (per-customer) gradient
    is already negligible (1e-5), or small (1e-4) when a restart from there
    cannot take a single step, and anything else is an error, as is a
    parameter running off to 0 or infinity (the data cannot identify the model)."""
    theta = np.asarray(start, dtype=np.float64)
    for _ in range(_RESTARTS):
        # a line search that fails on a long flat ridge (a and b growing
        # together) usually succeeds from where it stopped, with a fresh memory
        # a trial step far out may overflow; the line search backs off from
        # it, and a result that is not finite is refused below, so no warning
        with np.errstate(all="ignore"):
            result = minimize(
                objective,
                theta,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 1_000, "ftol": 1e-15, "gtol": 1e-9},
            )
        theta = np.asarray(result.x, dtype=np.float64)
        settled = bool(np.all(np.isfinite(theta)) and np.all(np.isfinite(result.jac)))
        if not settled:
            break
        jac = np.asarray(result.jac, dtype=np.float64).copy()
        if bounds is not None:  # a parameter held at its bound need not have a zero slope
            for i, (low, high) in enumerate(bounds):
                if high is not None and theta[i] >= high - 1e-9 and jac[i] < 0:
                    jac[i] = 0.0
                if low is not None and theta[i] <= low + 1e-9 and jac[i] > 0:
                    jac[i] = 0.0
        if result.success or np.abs(jac).max() <= 1e-5:
            break
        if result.nit == 0 and np.abs(jac).max() <= 1e-4:
            break  # not one step from here gains anything: as far as doubles go
    else:
        settled = False
    if not settled:
        raise FitError(f"the {model} fit did not converge: {result.message}")
    if np.any(np.abs(theta) > 30):
        raise FitError(
            f"the {model} fit ran off to a degenerate parameter ({np.exp(theta)}): "
            "too few customers, or too little history"
        )
    return theta


# -- predictions over many customers ---------------------------------------------------


def expected_purchases_array(t: float, c: Customers, params: ModelParams) -> Array:
    """``predictions.expected_purchases`` for every row at once (SciPy's 2F1 on
    the same Euler-transformed form), for reports over many customers.

    Where that form loses precision (a within 1e-4 of 1, where it divides by
    a - 1, or a+b+x-1 near 0) the rows go through the pure function instead."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = c.x, c.t_x, c.T
    cc = a + b + x - 1
    z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        f = hyp2f1(a + b - 1 - r, a - 1, cc, z)
        bracket = cc / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (a - 1) * f)
        log_odds = np.log(a / (b + x - 1)) + (r + x) * np.log1p((T - t_x) / (alpha + t_x))
        alive = np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)
    out = np.asarray(bracket * alive, dtype=np.float64)
    slow = ~np.isfinite(out) | (abs(a - 1) < 1e-4) | (cc < 1e-3)
    for i in np.flatnonzero(slow):
        out[i] = expected_purchases(t, int(x[i]), float(t_x[i]), float(T[i]), params)
    return out


# -- holdout: predicted against actual repeat purchases ----------------------------------

TOP_FREQUENCY = 7
"""Calibration frequencies from 7 up are one row ("7+"), as in the papers' tables."""


@dataclass(frozen=True, slots=True)
class HoldoutRow:
    frequency: str
    customers: int
    predicted: float
    """Mean predicted repeat purchases per customer in the holdout period."""
    actual: float

    def to_json(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency,
            "customers": self.customers,
            "predicted": self.predicted,
            "actual": self.actual,
            "error": self.predicted - self.actual,
        }


@dataclass(frozen=True, slots=True)
class Holdout:
    """How a fit predicts the repeat purchases of a later period."""

    days: float
    rows: list[HoldoutRow]
    total_predicted: float
    total_actual: int
    mean_absolute_error: float
    """Per customer, |predicted - actual| averaged."""

    @property
    def total_error(self) -> float | None:
        """(predicted - actual) / actual over everyone; None without actual purchases."""
        if not self.total_actual:
            return None
        return (self.total_predicted - self.total_actual) / self.total_actual

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "by_frequency": [row.to_json() for row in self.rows],
            "total_predicted": self.total_predicted,
            "total_actual": self.total_actual,
            "total_error": self.total_error,
            "mean_absolute_error": self.mean_absolute_error,
        }


def holdout(calibration: Customers, actual: Any, days: float, params: ModelParams) -> Holdout:
    """Compare each customer's expected repeat purchases over the ``days`` after
    the calibration with ``actual``, the repeat purchases (distinct new
    purchase days) they made in that period; rows by calibration frequency."""
    got = np.asarray(actual, dtype=np.float64)
    if len(got) != len(calibration):
        raise ValueError("one actual count per customer")
    predicted = expected_purchases_array(days, calibration, params)
    bucket = np.minimum(calibration.x, TOP_FREQUENCY).astype(np.int64)
    rows = []
    for k in np.unique(bucket):
        held = bucket == k
        rows.append(
            HoldoutRow(
                f"{k}+" if k == TOP_FREQUENCY else str(k),
                int(held.sum()),
                float(predicted[held].mean()),
                float(got[held].mean()),
            )
        )
    return Holdout(
        days,
        rows,
        float(predicted.sum()),
        int(got.sum()),
        float(np.abs(predicted - got).mean()) if len(got) else 0.0,
    )
