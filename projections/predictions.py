"""Predicted churn risk and lifetime value: BG/NBD and Gamma-Gamma, closed forms.

Pure: no I/O, no clock, no NumPy. Every function takes the instant to judge at
(or a customer's age), so the profile fields are the same live, ``--as-of`` and
in a backtest. Fitting the population parameters is ``projections.model_fit``
(NumPy and SciPy); this module only evaluates them, per customer, cheaply.

**The time unit is the day** (``TIME_UNIT``): ``ModelParams.alpha`` is in days,
and ``t_x``, ``T`` and horizons passed to the functions below are days (floats).
The ``*_at`` helpers take ``Micros`` instants and convert.

The models (Fader, Hardie and Lee, "Counting your customers the easy way",
Marketing Science 2005; Fader and Hardie, "The Gamma-Gamma model of monetary
value", 2013):

- a customer's *repeat* purchases follow a Poisson process of rate lambda ~
  Gamma(r, alpha) while alive; after each purchase the customer drops out with
  probability p ~ Beta(a, b);
- the values of a customer's transactions are Gamma(p, nu) with nu ~
  Gamma(q, gamma), independent of the purchase process.

Per customer they need, as of an instant: ``x`` the number of repeat
transactions (distinct purchase *days* after the first, as in the papers),
``t_x`` the time from the first purchase to the last, ``T`` the time from the
first purchase to the instant, and for the value the mean of the repeat
transactions' values (each day's total, the first day excluded).

How to wire this into the fold and the profile (the lead's part):

- **What the fold keeps per customer**: the distinct purchase days (UTC day
  numbers; their count minus one is ``x``), the first and the last purchase
  instants (``t_x`` = last - first, ``T`` = clock - first), the total of all
  order values and the total of the first purchase day (the mean repeat value
  is their difference over ``x``). ``PurchaseStats`` holds exactly that and
  ``add_purchase`` folds it in any order, like the rest of the fold. If the
  day set is too much state, a count of distinct days plus the last purchase
  day is exact while a customer's purchases arrive in time order; a late
  purchase on an already-counted earlier day would then count twice.
- **The profile fields at the clock**: ``predict(x, first_at, last_at,
  mean_value, now, params)`` gives ``p_alive``, ``expected_purchases_90d``,
  ``predicted_clv_365d`` and ``churn_risk``; a customer without a purchase,
  or any customer before the first fit, has none. Evaluate it when the
  profile is read, not in the fold: ``expected_purchases`` sums a series,
  about 2-15 us per customer, up to ~100 us for a brand-new customer (see
  bench/model_fit.py); for a whole population use
  ``projections.model_fit.expected_purchases_array`` (NumPy/SciPy).
- **The ``predicted-churn`` timer**: after each purchase, arm it at
  ``p_alive_crossing(x, first_at, last_at, params, 0.3)`` (closed form, a few
  microseconds; None below two purchase days): the first microsecond at which
  ``p_alive`` is below 0.3. A new purchase moves it (x and t_x change); a new
  ``model_fitted`` event on the log re-arms every customer's timer with the
  new parameters, so a replay gets the same instants from the same position.

CLV is undiscounted (DESIGN.md "Predictions" asks for none): the expected
number of transactions in the horizon times the expected value of one.
Amounts are summed as given, whatever their currency.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Final

from events.model import DAY, Micros

TIME_UNIT: Final = "days"
UNIT: Final = DAY
"""Microseconds per model time unit."""

HIGH_RISK_BELOW: Final = 0.3
"""``churn_risk`` is ``high`` when ``p_alive`` < 0.3 (the ``predicted-churn`` threshold),"""
MEDIUM_RISK_BELOW: Final = 0.7
"""``medium`` when 0.3 <= ``p_alive`` < 0.7, else ``low``."""

PURCHASES_HORIZON_DAYS: Final = 90.0
CLV_HORIZON_DAYS: Final = 365.0

_SERIES_TOLERANCE: Final = 2.0**-53
_SERIES_MAX_TERMS: Final = 1_000_000
_LATEST: Final = 253_402_300_799_999_999
"""9999-12-31T23:59:59.999999Z: a crossing later than this is never."""


@dataclass(frozen=True, slots=True)
class ModelParams:
    """The fitted population parameters; ``alpha`` in days (``TIME_UNIT``).

    BG/NBD: r, alpha (purchase rate ~ Gamma(r, alpha)), a, b (drop-out ~
    Beta(a, b)). Gamma-Gamma: p, q, gamma (order value). Frozen and flat so it
    serialises as one small JSON object, for the ``model_fits`` table and the
    ``model_fitted`` event.
    """

    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    gamma: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"model parameter {f.name} must be a positive number: {value!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "time_unit": TIME_UNIT,
            **{f.name: float(getattr(self, f.name)) for f in fields(self)},
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelParams:
        """The inverse of ``to_json``; a wrong unit or a missing parameter is a ValueError."""
        if body.get("time_unit") != TIME_UNIT:
            raise ValueError(f"model parameters must be in {TIME_UNIT}: {body.get('time_unit')!r}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in body]
        if missing:
            raise ValueError(f"model parameters lack {', '.join(missing)}")
        return cls(**{n: body[n] for n in names})


# -- BG/NBD -----------------------------------------------------------------------


def p_alive(x: int, t_x: float, T: float, params: ModelParams) -> float:
    """P(alive | x, t_x, T) (FHL 2005 eq. 13); 1 for a customer without repeats.

    Computed through the log-odds so that a very long silence gives a tiny
    probability instead of an overflow."""
    if x <= 0:
        return 1.0
    log_odds = _log_odds_dead(x, t_x, T, params)
    if log_odds > 0:
        e = math.exp(-log_odds)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(log_odds))


def _log_odds_dead(x: int, t_x: float, T: float, params: ModelParams) -> float:
    """log(P(dead)/P(alive)) = log(a/(b+x-1)) + (r+x) log((alpha+T)/(alpha+t_x))."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    return math.log(a / (b + x - 1)) + (r + x) * math.log1p((T - t_x) / (alpha + t_x))


def expected_purchases(t: float, x: int, t_x: float, T: float, params: ModelParams) -> float:
    """E[Y(t) | x, t_x, T]: expected repeat transactions in the next ``t`` days
    (FHL 2005 eq. 10).

    Eq. 10 is ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) *
    2F1(r+x, b+x; a+b+x-1; z)] * p_alive`` with ``z = t/(alpha+T+t)``. As written
    it is unstable: the 2F1 series converges slowly for large ``x`` (its terms
    grow like n^x z^n), and the bracket cancels to nothing as ``a`` nears 1.
    Euler's transformation ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C;
    z)`` absorbs the power in front and leaves ``(1-z)^(a-1) 2F1(a+b-1-r, a-1;
    a+b+x-1; z)``, whose terms fall like n^-(x+r-a+2) z^n; writing that 2F1 as
    ``1 + (a-1) G`` divides the (a-1) out exactly, with ``expm1`` for the rest.
    """
    if t <= 0:
        return 0.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a > _SERIES_UP_TO_A:
        return _expected_purchases_large_a(t, x, t_x, T, params)
    c = a + b + x - 1
    log_rest = -math.log1p(t / (alpha + T))  # log(1 - z) = log((alpha+T)/(alpha+T+t))
    z = -math.expm1(log_rest)
    u = (a - 1) * log_rest
    first = c * -log_rest * _exprel(u)  # c * (1 - (1-z)^(a-1)) / (a-1)
    bracket = first - math.exp(u) * _c_times_g(a + b - 1 - r, a, c, z)
    return bracket * p_alive(x, t_x, T, params)


_SERIES_UP_TO_A: Final = 20.0
"""Above this ``a`` the transformed series needs about ``a z / (1 - z)`` terms
before they fall (a fit with a near-constant drop-out has a and b in the
millions), so eq. 10 is evaluated as written with SciPy's 2F1 instead: with
``a`` that large nothing in it cancels."""


def _expected_purchases_large_a(
    t: float, x: int, t_x: float, T: float, params: ModelParams
) -> float:
    """Eq. 10 as written, for ``a > _SERIES_UP_TO_A`` (see there). SciPy loads
    only on this path, so the usual fits never pay for its import."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_rest = -math.log1p(t / (alpha + T))
    z = -math.expm1(log_rest)
    rest = math.exp((r + x) * log_rest) * float(hyp2f1(r + x, b + x, a + b + x - 1, z))
    if not math.isfinite(rest):
        raise ArithmeticError(f"2F1 overflowed at z={z}")
    return (a + b + x - 1) / (a - 1) * (1.0 - rest) * p_alive(x, t_x, T, params)


def _exprel(u: float) -> float:
    """(e^u - 1)/u, 1 at 0."""
    return math.expm1(u) / u if u != 0 else 1.0


def _c_times_g(big_a: float, a: float, c: float, z: float) -> float:
    """c * G, where 2F1(big_a, a-1; c; z) = 1 + (a-1) G:
    sum over n >= 1 of (big_a)_n (a)_(n-1) / ((c+1)_(n-1) n!) z^n.

    Multiplying by c here keeps ``c = a+b-1`` (x = 0, a+b near 1) finite."""
    return big_a * z * _series(big_a + 1, a, c + 1, z, 2.0)


def hyp2f1_series(a: float, b: float, c: float, z: float) -> float:
    """The Gauss hypergeometric 2F1(a, b; c; z) for 0 <= z < 1 by its series: the
    reference for ``expected_purchases``' transformed series, checked against SciPy's."""
    return _series(a, b, c, z, 1.0)


def _series(a: float, b: float, c: float, z: float, m: float) -> float:
    """1 + sum over n >= 1 of (a)_n (b)_n / ((c)_n (m)_n) z^n, for 0 <= z < 1 and m >= 1.

    Summed until a bound on the rest is below the rounding of the sum. The
    ratio of term n+1 to term n is z (a+n)/(c+n) (b+n)/(m+n), and once every
    factor is positive each fraction moves monotonically towards 1, so every
    later ratio is at most q = z max(1, (a+n)/(c+n)) max(1, (b+n)/(m+n)) and
    the rest at most |term| q / (1 - q)."""
    term = 1.0
    total = 1.0
    n = 0.0
    while n < _SERIES_MAX_TERMS:
        term *= (a + n) * (b + n) * z / ((c + n) * (m + n))
        total += term
        n += 1.0
        if term == 0.0:  # a or b a whole number <= 0: the series ends
            return total
        if abs(term) > 1e-12 * abs(total):  # far from done: skip the bound
            continue
        an, bn, cn, mn = a + n, b + n, c + n, m + n
        if an > 0 and bn > 0 and cn > 0:
            q = z * (an / cn if an > cn else 1.0) * (bn / mn if bn > mn else 1.0)
            if q < 1.0 and abs(term) * q <= _SERIES_TOLERANCE * (1.0 - q) * abs(total):
                return total
    raise ArithmeticError(f"the 2F1 series did not converge in {n:.0f} terms (z={z})")


# -- Gamma-Gamma and CLV ------------------------------------------------------------


def expected_order_value(x: int, mean_value: float, params: ModelParams) -> float | None:
    """E[M | x, mean of the x repeat transactions] = p (gamma + x m) / (p x + q - 1)
    (Fader and Hardie 2013, eq. 5): the customer's mean pulled towards the
    population's ``p gamma / (q - 1)``, the more so the fewer transactions.
    None where the model's mean is infinite (p x + q <= 1)."""
    denominator = params.p * x + params.q - 1
    if denominator <= 0:
        return None
    return params.p * (params.gamma + x * mean_value) / denominator


def predicted_clv(
    horizon: float, x: int, t_x: float, T: float, mean_value: float, params: ModelParams
) -> float | None:
    """Expected spend in the next ``horizon`` days, undiscounted: expected
    transactions times the expected value of one (the two models are independent)."""
    value = expected_order_value(x, mean_value, params)
    if value is None:
        return None
    return expected_purchases(horizon, x, t_x, T, params) * value


def churn_risk(alive: float) -> str:
    """``high`` below 0.3, ``medium`` below 0.7, else ``low``."""
    if alive < HIGH_RISK_BELOW:
        return "high"
    if alive < MEDIUM_RISK_BELOW:
        return "medium"
    return "low"


# -- what the fold keeps, and evaluation at an instant ----------------------------------


def recency(x: int, first_at: Micros, last_at: Micros) -> float:
    """``t_x``: days from the first purchase to the last; 0 without a repeat day."""
    return (last_at - first_at) / UNIT if x else 0.0


def age(first_at: Micros, last_at: Micros, now: Micros) -> float:
    """``T``: days from the first purchase to ``now`` (never less than ``t_x``)."""
    return (max(now, last_at) - first_at) / UNIT


@dataclass(frozen=True, slots=True)
class PurchaseStats:
    """A customer's purchase history as the models need it (see the module docstring)."""

    days: tuple[int, ...]
    """The distinct UTC day numbers (``instant // DAY``) with a purchase, ascending."""
    first_at: Micros
    last_at: Micros
    total: float
    """All order values."""
    first_day_total: float
    """Order values on the first purchase day (not a repeat transaction)."""

    @property
    def x(self) -> int:
        """Repeat transactions: distinct purchase days after the first."""
        return len(self.days) - 1

    @property
    def mean_value(self) -> float:
        """Mean value of the repeat transactions (each a day's total); 0 without any."""
        return (self.total - self.first_day_total) / self.x if self.x else 0.0

    def t_x(self) -> float:
        return recency(self.x, self.first_at, self.last_at)

    def age(self, now: Micros) -> float:
        return age(self.first_at, self.last_at, now)


def add_purchase(stats: PurchaseStats | None, at: Micros, amount: float) -> PurchaseStats:
    """Fold one purchase in; any order of the same purchases gives the same stats."""
    day = at // DAY
    if stats is None:
        return PurchaseStats((day,), at, at, amount, amount)
    days = stats.days
    at_day = bisect.bisect_left(days, day)
    if at_day == len(days) or days[at_day] != day:
        days = (*days[:at_day], day, *days[at_day:])
    if day < stats.days[0]:
        first_day_total = amount  # an earlier first day: the old one becomes a repeat
    elif day == stats.days[0]:
        first_day_total = stats.first_day_total + amount
    else:
        first_day_total = stats.first_day_total
    return PurchaseStats(
        days,
        min(stats.first_at, at),
        max(stats.last_at, at),
        stats.total + amount,
        first_day_total,
    )


def summarise(purchases: Iterable[tuple[Micros, float]]) -> PurchaseStats | None:
    """The stats of (instant, amount) purchases; None without any."""
    stats: PurchaseStats | None = None
    for at, amount in purchases:
        stats = add_purchase(stats, at, amount)
    return stats


# -- at an instant: what the profile shows and when predicted-churn fires -----------------
#
# These take the fold's scalars (x, the first and last purchase instants, the
# mean repeat value) rather than a PurchaseStats, so the profile can keep them
# however it likes.


@dataclass(frozen=True, slots=True)
class Predictions:
    p_alive: float
    expected_purchases_90d: float
    predicted_clv_365d: float | None
    churn_risk: str


def predict(
    x: int, first_at: Micros, last_at: Micros, mean_value: float, now: Micros, params: ModelParams
) -> Predictions:
    """The profile's prediction fields, judged at ``now``."""
    t_x, T = recency(x, first_at, last_at), age(first_at, last_at, now)
    alive = p_alive(x, t_x, T, params)
    return Predictions(
        p_alive=alive,
        expected_purchases_90d=expected_purchases(PURCHASES_HORIZON_DAYS, x, t_x, T, params),
        predicted_clv_365d=predicted_clv(CLV_HORIZON_DAYS, x, t_x, T, mean_value, params),
        churn_risk=churn_risk(alive),
    )


def p_alive_at(
    x: int, first_at: Micros, last_at: Micros, now: Micros, params: ModelParams
) -> float:
    return p_alive(x, recency(x, first_at, last_at), age(first_at, last_at, now), params)


def p_alive_crossing(
    x: int,
    first_at: Micros,
    last_at: Micros,
    params: ModelParams,
    threshold: float = HIGH_RISK_BELOW,
) -> Micros | None:
    """The first microsecond at which ``p_alive`` is below ``threshold`` if no
    purchase comes: the instant to arm the ``predicted-churn`` timer at.

    None for a customer without a repeat purchase day (``p_alive`` stays 1)
    or a crossing after the year 9999. For x >= 1, ``p_alive`` falls
    monotonically in ``T`` and its log-odds invert in closed form:
    ``T* = t_x + (alpha + t_x) * expm1(m)`` with ``m = (log((1-h)/h) -
    log(a/(b+x-1))) / (r+x)``. When ``m <= 0`` it is already below right after
    the last purchase, and the answer is the last purchase instant. The
    closed-form instant is then nudged by whole microseconds so that
    ``p_alive_at`` (what the profile shows) is below the threshold at the
    answer and not below it one microsecond earlier.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1: {threshold!r}")
    if x < 1:
        return None
    t_x = recency(x, first_at, last_at)
    m = (math.log((1 - threshold) / threshold) - math.log(params.a / (params.b + x - 1))) / (
        params.r + x
    )
    try:
        after_last = (params.alpha + t_x) * math.expm1(m) * UNIT if m > 0 else 0.0
    except OverflowError:
        return None
    if last_at + after_last > _LATEST:
        return None
    instant = last_at + math.ceil(after_last)

    def below(at: Micros) -> bool:
        return p_alive_at(x, first_at, last_at, at, params) < threshold

    for _ in range(1_000):  # floating-point rounding: a few microseconds at most
        if below(instant):
            break
        instant += 1
    for _ in range(1_000):
        if instant <= last_at or not below(instant - 1):
            break
        instant -= 1
    return instant


_CROSSINGS_KEPT: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class Model:
    """The fitted parameters in effect on a partition from a log position on.

    ``adopted_at`` is the partition's clock at the ``model_fitted`` record
    (None on a partition that had no clock yet): a ``predicted-churn``
    crossing before it happened with no model in effect, so it never fires.
    Kept with the partition's offset and clock (``consumer_offsets.model``).
    """

    version: int
    params: ModelParams
    adopted_at: Micros | None = None
    _crossings: dict[tuple[int, Micros, Micros, float], Micros | None] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def crossing(
        self, x: int, first_at: Micros, last_at: Micros, threshold: float
    ) -> Micros | None:
        """``p_alive_crossing`` under these parameters, remembered: the timers
        ask before every event of a customer, and the answer moves only with
        a new purchase day."""
        key = (x, first_at, last_at, threshold)
        memo = self._crossings
        if key in memo:
            return memo[key]
        if len(memo) >= _CROSSINGS_KEPT:
            memo.clear()
        found = memo[key] = p_alive_crossing(x, first_at, last_at, self.params, threshold)
        return found

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "adopted_at": self.adopted_at, **self.params.to_json()}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Model:
        adopted = body.get("adopted_at")
        return cls(
            int(body["version"]),
            ModelParams.from_json(body),
            None if adopted is None else int(adopted),
        )
