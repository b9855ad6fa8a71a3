"""The pipeline's memory helpers: the bounded profile cache and the GC pacing."""

from __future__ import annotations

import gc
import weakref

from consumers.profile_cache import ProfileCache
from events.gc_pacing import GcPacer
from projections.profile import Profile


def test_cache_returns_kept_profiles_and_names_the_rest() -> None:
    cache = ProfileCache(capacity=10)
    a, b = Profile("a"), Profile("b")
    cache.keep({"a": a, "b": b})
    found, missing = cache.split(["a", "x", "b"])
    assert found == {"a": a, "b": b}
    assert found["a"] is a  # the very object the next batch folds into
    assert missing == ["x"]


def test_cache_evicts_the_least_recently_written() -> None:
    cache = ProfileCache(capacity=2)
    cache.keep({"a": Profile("a"), "b": Profile("b")})
    cache.keep({"a": Profile("a")})  # rewritten: now the most recent
    cache.keep({"c": Profile("c")})
    found, missing = cache.split(["a", "b", "c"])
    assert sorted(found) == ["a", "c"]
    assert missing == ["b"]
    assert len(cache) == 2


def test_cache_of_capacity_zero_keeps_nothing_and_clear_empties() -> None:
    off = ProfileCache(capacity=0)
    off.keep({"a": Profile("a")})
    assert len(off) == 0
    on = ProfileCache(capacity=5)
    on.keep({"a": Profile("a")})
    on.clear()
    assert on.split(["a"]) == ({}, ["a"])


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_collector_is_paused_only_during_a_batch_and_cycles_are_still_freed() -> None:
    collector = GcPacer(full_every=100)
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        node = _Node()  # a reference cycle: only the cyclic collector frees it
        ref = weakref.ref(node)
        del node
    assert gc.isenabled()
    collector.count(50)
    gc.collect()  # frozen objects are out of the collector's reach
    assert ref() is not None
    collector.count(50)  # the full pass after full_every records
    assert ref() is None
    assert gc.get_freeze_count() == 0
