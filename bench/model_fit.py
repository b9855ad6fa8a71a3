"""The churn and lifetime-value model fit (``projections.model_fit.fit``, what
``engage model fit`` runs after reading the purchases) on synthetic customers.

The customers are drawn from BG/NBD and Gamma-Gamma themselves, with the
CDNOW estimates (alpha in days) as the truth and ages spread over two years,
so the fit also shows how closely it recovers them. The per-customer closed
forms the profile uses (``projections.predictions``) are timed too, on a
sample of the same customers. Reading the purchases off the log is not
included: it is the codec's decode rate (bench/codec.py).

    python bench/model_fit.py [--customers 1000000] [--seed 16]

Prints one JSON object; the target is a fit of 1M customers in 30 s or less.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from events.model import DAY
from projections.model_fit import expected_purchases_array, fit
from projections.model_simulation import simulate
from projections.predictions import (
    ModelParams,
    expected_purchases,
    p_alive,
    p_alive_crossing,
)

TRUTH = ModelParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426, p=6.25, q=3.74, gamma=15.44)
SAMPLE = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    started = time.perf_counter()
    customers = simulate(args.customers, TRUTH, rng.uniform(1, 730, args.customers), rng)
    simulated = time.perf_counter() - started

    started = time.perf_counter()
    result = fit(customers)
    fit_seconds = time.perf_counter() - started
    got = result.params

    started = time.perf_counter()
    expected_purchases_array(90.0, customers, got)
    array_seconds = time.perf_counter() - started

    rows = list(
        zip(customers.x[:SAMPLE], customers.t_x[:SAMPLE], customers.T[:SAMPLE], strict=True)
    )
    started = time.perf_counter()
    for x, t_x, T in rows:
        p_alive(int(x), t_x, T, got)
    alive_us = (time.perf_counter() - started) / SAMPLE * 1e6
    started = time.perf_counter()
    for x, t_x, T in rows:
        expected_purchases(90.0, int(x), t_x, T, got)
    expected_us = (time.perf_counter() - started) / SAMPLE * 1e6
    recent = [(int(x), int(t_x * DAY)) for x, t_x, _ in rows]
    started = time.perf_counter()
    for x, last_at in recent:
        p_alive_crossing(x, 0, last_at, got)
    crossing_us = (time.perf_counter() - started) / SAMPLE * 1e6

    names = ("r", "alpha", "a", "b", "p", "q", "gamma")
    print(
        json.dumps(
            {
                "benchmark": "model_fit",
                "customers": args.customers,
                "repeat_customers": result.repeat_customers,
                "simulate_seconds": round(simulated, 2),
                "fit_seconds": round(fit_seconds, 2),
                "target_fit_seconds": 30,
                "time_unit": "days",
                "truth": {n: getattr(TRUTH, n) for n in names},
                "fitted": {n: round(getattr(got, n), 4) for n in names},
                "relative_error": {
                    n: round(getattr(got, n) / getattr(TRUTH, n) - 1, 4) for n in names
                },
                "expected_purchases_90d_array_seconds": round(array_seconds, 2),
                "per_customer_us": {
                    "p_alive": round(alive_us, 2),
                    "expected_purchases_90d": round(expected_us, 2),
                    "p_alive_crossing": round(crossing_us, 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
