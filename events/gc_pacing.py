"""Pacing Python's cyclic garbage collector around batches: the processor's
and the publisher's (whose identity stage keeps the persons it has met in
memory, ``projections.adapters.postgres_identity``).

A batch allocates millions of container objects (decoded events, their
property dicts, profile lists and tuples) and keeps hundreds of thousands of
them alive in the profile cache. The collector is triggered by allocation
counts, so it ran many times per batch and rescanned every cached profile
each time: measured at 200,000 events, it took 45% of processing time.

None of that data forms reference cycles (events, profiles and rows are trees
of dicts, lists, tuples and strings), so reference counting frees it without
the collector's help. Each batch therefore runs with the collector paused, and
what survives it is moved into the permanent generation (``gc.freeze``) so
later collections do not rescan it. Anything that did form a cycle is still
found: every ``full_every`` records (or 1,000 steps) everything is unfrozen and collected once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FULL_EVERY = 2_000_000
"""Records between full collections: one full pass (about a second with a
full profile cache) per two million records processed."""
FULL_EVERY_STEPS = 1_000
"""Steps between full collections whatever their size, so an idle processor
ticking once a second still collects every quarter of an hour."""


class GcPacer:
    __slots__ = ("_full_every", "_since_full", "_steps")

    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self._full_every = full_every
        self._since_full = 0
        self._steps = 0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Run a batch without the collector; freeze what survives it."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            gc.freeze()
            if enabled:
                gc.enable()

    def count(self, records: int) -> None:
        """After a batch: collect everything once enough records or steps have passed."""
        self._since_full += records
        self._steps += 1
        if self._since_full >= self._full_every or self._steps >= FULL_EVERY_STEPS:
            self._since_full = 0
            self._steps = 0
            gc.unfreeze()
            gc.collect()
