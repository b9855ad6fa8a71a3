"""Simulating BG/NBD customers: data with known parameters, for the fit's
tests and ``bench/model_fit.py``."""

from __future__ import annotations

import numpy as np

from projections.model_fit import Array, Customers
from projections.predictions import ModelParams


def simulate(n: int, params: ModelParams, T: float | Array, rng: np.random.Generator) -> Customers:
    """``n`` customers drawn from the models themselves, each observed for ``T``
    after a first purchase: for tests that a fit recovers its parameters, and
    for the benchmark. BG/NBD: repeat purchases arrive at rate lambda ~
    Gamma(r, alpha); after each the customer drops out with probability
    p ~ Beta(a, b), so x = min(drop-out purchase, arrivals by T), and given the
    arrivals the x-th is at T times a Beta(x, arrivals - x + 1) order statistic.
    Gamma-Gamma: nu ~ Gamma(q, gamma) and the mean of x values ~ Gamma(p x, nu x)."""
    ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    rate = rng.gamma(params.r, 1.0 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    arrivals = rng.poisson(rate * ages)
    x = np.minimum(rng.geometric(drop), arrivals)
    repeat = x > 0
    t_x = np.zeros(n)
    t_x[repeat] = ages[repeat] * rng.beta(x[repeat], arrivals[repeat] - x[repeat] + 1)
    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    mean = np.zeros(n)
    mean[repeat] = rng.gamma(params.p * x[repeat], 1.0 / (nu[repeat] * x[repeat]))
    return Customers(x.astype(np.float64), t_x, ages, mean)
