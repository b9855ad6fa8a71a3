"""A realistic synthetic customer history, for ``engage demo`` and the benchmarks.

The demo and the benchmarks need histories that exercise every rule and every
profile field (newsletter fatigue, thresholds crossed, churn, win-backs,
detractors after support) at sizes of millions of events, so the generator is
a small simulation rather than random records:

* every customer has a persona (newsletter reader, loyal buyer, one-time buyer,
  browser, support-heavy, big spender, casual) that sets its rates;
* customers are acquired over the whole period, some churn for good and some
  go quiet and come back;
* activity follows the week (weekend peaks) and the calendar (a holiday ramp
  from late November, post-holiday sales and returns into January, a small
  Valentine's bump);
* email campaigns go to the customers subscribed at send time.

The simulation runs one day at a time: each customer's next visit is scheduled
into a per-day bucket, and follow-ups that land later (an email opened the next
morning, a support case closed three days on, a refund) go into later buckets.
A day is sorted and emitted once it has been simulated, so the output is in
time order without a global heap, and memory stays bounded by the customers
plus the few weeks of follow-ups still pending. Times are integer
microseconds and the timestamp text is built from a per-day prefix and a table
of clock strings, because ``datetime`` in the inner loop would cost more than
the rest together.

Everything is drawn from ``random.Random(seed)`` in a fixed order, so a seed
gives the same history on every run (and on every machine with the same
Python, whose ``random`` distributions are not promised across versions).

The package's modules: ``spec`` (what to generate, the calendar, the size
estimate), ``personas`` (rates and text tables), ``simulation`` (the day by
day simulation, ``generate``) and ``lines`` (JSON Lines with bad lines and
repeats mixed in, ``generate_lines``).
"""

from engage.synthetic.lines import BAD_KINDS, bad_line, generate_lines
from engage.synthetic.personas import SHAPES
from engage.synthetic.simulation import generate
from engage.synthetic.spec import DEFAULT_START, LONG_START, HistorySpec, estimate_events

__all__ = [
    "BAD_KINDS",
    "DEFAULT_START",
    "LONG_START",
    "SHAPES",
    "HistorySpec",
    "bad_line",
    "estimate_events",
    "generate",
    "generate_lines",
]
