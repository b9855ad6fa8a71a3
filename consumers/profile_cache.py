"""Profiles kept in memory by the pipeline between batches.

Loading a profile costs a PostgreSQL read plus a JSON parse and a rebuild of
the dataclass; at ten events per customer that was a third of a replay's time,
because a customer's events fall into many batches and each batch reloaded
what the previous one had just written. A partition has a single writer at a
time (its offsets rows are locked per batch), so that writer's copy of a
profile is current for as long as nobody else has written the partition
since. The pipeline proves that with a writer token per partition
(``UnitOfWork.claim_partitions``), checked in the same transaction as
the batch: any other writer in between makes the whole cache invalid.

The cached objects are the very ones the fold mutates, so a batch that does not
commit leaves them ahead of the database: ``clear`` must then be called (the
processor does it when a step raises).
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.profile import Profile

DEFAULT_CAPACITY = 500_000
"""Profiles kept per process: about 3.5 KB each, so about 1.7 GB when full.
Enough for a partition-parallel replay of a million customers on two cores to
load each profile from the database once at most."""


class ProfileCache:
    """A least-recently-written bound on a dict; insertion order is recency."""

    __slots__ = ("_capacity", "_profiles")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._profiles: dict[str, Profile] = {}

    def __len__(self) -> int:
        return len(self._profiles)

    def split(self, customer_ids: Iterable[str]) -> tuple[dict[str, Profile], list[str]]:
        """The cached profiles among ``customer_ids``, and the ids to load."""
        found: dict[str, Profile] = {}
        missing: list[str] = []
        profiles = self._profiles
        for customer_id in customer_ids:
            profile = profiles.get(customer_id)
            if profile is None:
                missing.append(customer_id)
            else:
                found[customer_id] = profile
        return found, missing

    def keep(self, profiles: dict[str, Profile]) -> None:
        """Remember the profiles a batch wrote, as most recent; evict the oldest."""
        if self._capacity <= 0:
            return
        cached = self._profiles
        for customer_id, profile in profiles.items():
            cached.pop(customer_id, None)
            cached[customer_id] = profile
        excess = len(cached) - self._capacity
        if excess > 0:
            for customer_id in list(_first(cached, excess)):
                del cached[customer_id]

    def drop(self, customer_ids: Iterable[str]) -> None:
        """Forget profiles that no longer exist (a person absorbed by a merge)."""
        for customer_id in customer_ids:
            self._profiles.pop(customer_id, None)

    def clear(self) -> None:
        self._profiles.clear()


def _first(profiles: dict[str, Profile], n: int) -> Iterable[str]:
    for i, customer_id in enumerate(profiles):
        if i >= n:
            return
        yield customer_id
