"""The maximum-likelihood fits against the published CDNOW estimates (Fader,
Hardie and Lee 2005; Fader and Hardie 2013), and their parts against plain
definitions. The data ship in tests/data/cdnow (see its README)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import approx_fprime

from events.model import DAY
from projections.model_fit import (
    MAX_BETA_SIZE,
    MIN_DROPOUT,
    Customers,
    FitError,
    _bgnbd_objective,
    _gamma_gamma_objective,
    bgnbd_log_likelihood,
    expected_purchases_array,
    fit,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    holdout,
)
from projections.model_simulation import simulate
from projections.predictions import ModelParams, PurchaseStats, expected_purchases, summarise

DATA = Path(__file__).parent.parent / "data" / "cdnow"
CALIBRATION_END = datetime(1997, 10, 1, tzinfo=UTC)
"""The 39 weeks of calibration are 1997-01-01 to 1997-09-30 inclusive."""
HOLDOUT_END = datetime(1998, 7, 1, tzinfo=UTC)


def _micros(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000


def _published_summary() -> Customers:
    """The papers' per-customer summary: x, t_x and T in weeks, zbar."""
    rows = np.loadtxt(
        DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", skiprows=1
    )
    return Customers.of(rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4])


def _transactions() -> dict[int, list[tuple[int, float]]]:
    """Each sample customer's purchases (instant, dollars) from the raw file."""
    by_customer: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for line in (DATA / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, dollars = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        by_customer[int(customer)].append((_micros(when), float(dollars)))
    return by_customer


def _stats_until(end: datetime) -> list[PurchaseStats]:
    """Per customer, in sample-id order, the stats of the purchases before ``end``."""
    stats = []
    for _, purchases in sorted(_transactions().items()):
        found = summarise(p for p in purchases if p[0] < _micros(end))
        assert found is not None  # every sample customer bought in the first quarter
        stats.append(found)
    return stats


def _sig(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def test_bgnbd_reproduces_the_published_cdnow_estimates() -> None:
    c = _published_summary()
    assert len(c) == 2_357
    got = fit_bgnbd(c.x, c.t_x, c.T)
    assert [_sig(v) for v in (got.r, got.alpha, got.a, got.b)] == [0.243, 4.41, 0.793, 2.43]
    assert _sig(got.alpha, 4) == 4.414 and _sig(got.b, 4) == 2.426
    assert round(got.log_likelihood, 1) == -9582.4


def test_gamma_gamma_reproduces_the_published_cdnow_estimates() -> None:
    """On the 946 customers with repeat purchases: the means from the raw
    transactions give the published p 6.25, q 3.74, gamma 15.44; the summary
    file's means, rounded to cents, agree to three significant digits."""
    stats = _stats_until(CALIBRATION_END)
    repeat = [s for s in stats if s.x > 0]
    assert len(repeat) == 946
    got = fit_gamma_gamma([s.x for s in repeat], [s.mean_value for s in repeat])
    assert (round(got.p, 2), round(got.q, 2), round(got.gamma, 2)) == (6.25, 3.74, 15.44)
    c = _published_summary()
    held = c.x > 0
    rounded = fit_gamma_gamma(c.x[held], c.mean_value[held])
    assert [_sig(v) for v in (rounded.p, rounded.q, rounded.gamma)] == [6.25, 3.74, 15.4]


def test_purchase_stats_of_the_raw_transactions_are_the_published_summary() -> None:
    """Distinct purchase days, recency and the mean repeat value come out as in the
    papers; the papers count T to the calibration's last day, one day short of
    its end, which ``PurchaseStats.age`` counts to."""
    c = Customers.from_stats(_stats_until(CALIBRATION_END), _micros(CALIBRATION_END))
    published = _published_summary()
    assert np.array_equal(c.x, published.x)
    assert np.abs(c.t_x / 7 - published.t_x).max() <= 0.005
    assert np.abs(c.mean_value - published.mean_value).max() <= 0.005 + 1e-9
    assert np.abs((c.T - 1) / 7 - published.T).max() <= 0.005


def test_the_fit_is_in_the_unit_of_its_times() -> None:
    """alpha scales with the time unit; r, a, b and the likelihood's shape do not."""
    c = _published_summary()
    weeks = fit_bgnbd(c.x, c.t_x, c.T)
    days = fit_bgnbd(c.x, c.t_x * 7, c.T * 7)
    assert days.alpha == pytest.approx(weeks.alpha * 7, rel=1e-5)
    for name in ("r", "a", "b"):
        assert getattr(days, name) == pytest.approx(getattr(weeks, name), rel=1e-5)
    # the densities differ by the Jacobian: 7 per repeat purchase's time
    shift = float(c.x.sum()) * np.log(7)
    assert days.log_likelihood == pytest.approx(weeks.log_likelihood - shift, abs=1e-3)


def test_the_grouped_objectives_are_the_plain_log_likelihoods_and_gradients() -> None:
    c = _published_summary()
    theta = np.log([0.3, 5.0, 0.7, 2.0])
    value, grad = _bgnbd_objective(c.x, c.t_x, c.T)(theta)
    plain = bgnbd_log_likelihood(0.3, 5.0, 0.7, 2.0, c.x, c.t_x, c.T).sum()
    assert value * len(c) == pytest.approx(-plain, rel=1e-12)
    numeric = approx_fprime(theta, lambda t: _bgnbd_objective(c.x, c.t_x, c.T)(t)[0], 1e-7)
    assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-6)

    held = c.x > 0
    x, m = c.x[held], c.mean_value[held]
    theta = np.log([5.0, 3.0, 14.0])
    value, grad = _gamma_gamma_objective(x, m)(theta)
    plain = gamma_gamma_log_likelihood(5.0, 3.0, 14.0, x, m).sum()
    assert value * len(x) == pytest.approx(-plain, rel=1e-12)
    numeric = approx_fprime(theta, lambda t: _gamma_gamma_objective(x, m)(t)[0], 1e-7)
    assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_a_fit_recovers_the_parameters_it_was_simulated_from() -> None:
    truth = ModelParams(r=0.6, alpha=20.0, a=0.9, b=3.0, p=4.0, q=5.0, gamma=40.0)
    rng = np.random.default_rng(16)
    c = simulate(200_000, truth, rng.uniform(30, 720, 200_000), rng)
    got = fit(c).params
    for name in ("r", "alpha", "a", "b", "p", "q", "gamma"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=0.1), name


def test_a_drop_out_the_same_for_everyone_stops_at_the_largest_beta() -> None:
    """Every customer drops out with probability 0.2: the likelihood rises
    for ever (ever more slowly) as a and b grow together, so the fit stops
    on that ridge, at a + b = MAX_BETA_SIZE at most, with the right mean,
    instead of failing or running off."""
    truth = ModelParams(r=0.5, alpha=15.0, a=2e7, b=8e7, p=4.0, q=5.0, gamma=40.0)
    rng = np.random.default_rng(18)
    c = simulate(50_000, truth, rng.uniform(30, 720, 50_000), rng)
    got = fit_bgnbd(c.x, c.t_x, c.T)
    assert 1e4 < got.a + got.b <= MAX_BETA_SIZE * (1 + 1e-9)
    assert got.a / (got.a + got.b) == pytest.approx(0.2, rel=0.05)
    assert got.r == pytest.approx(0.5, rel=0.1)
    assert got.alpha == pytest.approx(15.0, rel=0.1)


def test_nobody_dropping_out_stops_at_the_smallest_drop_out() -> None:
    """A history where no customer lapses (the demo's, as of its last day):
    the likelihood rises for ever as the drop-out goes to 0, so the fit stops
    near MIN_DROPOUT, the plain NBD, with the purchase rates right and
    predictions that stay finite, instead of failing as degenerate."""
    rng = np.random.default_rng(19)
    n = 20_000
    T = rng.uniform(30, 360, n)
    rate = rng.gamma(0.5, 1 / 15.0, n)  # r = 0.5, alpha = 15: the NBD, nobody leaves
    x = rng.poisson(rate * T)
    # given x purchases in (0, T], the last is the largest of x uniform times
    t_x = np.where(x > 0, T * rng.uniform(size=n) ** (1 / np.maximum(x, 1)), 0.0)
    got = fit_bgnbd(x, t_x, T)
    assert MIN_DROPOUT * (1 - 1e-9) <= got.a / (got.a + got.b) < 1e-4
    assert got.r == pytest.approx(0.5, rel=0.1)
    assert got.alpha == pytest.approx(15.0, rel=0.1)
    params = ModelParams(got.r, got.alpha, got.a, got.b, 4.0, 5.0, 40.0)
    ahead = expected_purchases(90.0, 3, 100.0, 200.0, params)
    assert 0 < ahead < 100


def test_the_array_predictions_are_the_pure_ones() -> None:
    rng = np.random.default_rng(17)
    for a in (0.793, 1.0, 1 + 1e-6, 2.5):
        params = ModelParams(r=0.243, alpha=30.9, a=a, b=2.426, p=6.25, q=3.74, gamma=15.44)
        c = simulate(500, params, rng.uniform(1, 1_000, 500), rng)
        for t in (1.0, 90.0, 365.0):
            got = expected_purchases_array(t, c, params)
            want = [
                expected_purchases(t, int(x), t_x, T, params)
                for x, t_x, T in zip(c.x, c.t_x, c.T, strict=True)
            ]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_holdout_compares_predicted_and_actual_repeat_purchases_by_frequency() -> None:
    c = _published_summary()
    params_weeks = fit(c).params
    calibration, later = _stats_until(CALIBRATION_END), _stats_until(HOLDOUT_END)
    actual = np.array([b.x - a.x for a, b in zip(calibration, later, strict=True)])
    weeks = (HOLDOUT_END - CALIBRATION_END).days / 7
    report = holdout(c, actual, weeks, params_weeks)
    # the actual counts are the distinct purchase days in the holdout, per customer
    by_customer = _transactions()
    days_after = [
        len({t // DAY for t, _ in by_customer[i] if t >= _micros(CALIBRATION_END)})
        for i in sorted(by_customer)
    ]
    assert report.total_actual == sum(days_after) == int(actual.sum())
    assert [r.frequency for r in report.rows] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(r.customers for r in report.rows) == 2_357
    predicted = expected_purchases_array(weeks, c, params_weeks)
    assert report.total_predicted == pytest.approx(predicted.sum())
    zero = report.rows[0]
    assert zero.predicted == pytest.approx(predicted[c.x == 0].mean())
    assert zero.actual == pytest.approx(actual[c.x == 0].mean())
    means = [r.predicted for r in report.rows]
    assert means == sorted(means)  # more purchases before, more expected after
    assert report.total_error == (predicted.sum() - actual.sum()) / actual.sum()
    body = report.to_json()
    assert body["by_frequency"][0]["error"] == zero.predicted - zero.actual


def test_a_published_conditional_expectation() -> None:
    """Fader and Hardie's note "Implementing the BG/NBD model" works customer 1
    (x = 2, t_x = 30.43, T = 38.86 weeks) at the CDNOW estimates: 1.226 expected
    repeat purchases in the next 39 weeks."""
    c = _published_summary()
    fitted = fit_bgnbd(c.x, c.t_x, c.T)
    weeks = ModelParams(fitted.r, fitted.alpha, fitted.a, fitted.b, 1.0, 2.0, 1.0)
    assert round(expected_purchases(39, 2, 30.43, 38.86, weeks), 3) == 1.226


def test_too_little_data_is_a_clear_error() -> None:
    with pytest.raises(FitError, match="at least 4 customers"):
        fit_bgnbd([0, 1], [0, 1], [2, 2])
    with pytest.raises(FitError, match="repeat purchase"):
        fit_bgnbd([0, 0, 0, 0], [0, 0, 0, 0], [5, 5, 5, 5])
    with pytest.raises(FitError, match="positive value"):
        fit_gamma_gamma([1, 2, 3], [0.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="t_x <= T"):
        Customers.of([1], [5], [3])
