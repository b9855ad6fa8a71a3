"""The profile store's contract: atomic batches, locked offsets, a monotonic clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from engage.errors import EngageError
from events.log import TOUCHPOINTS
from events.model import TriggerConverted, TriggerEvent
from projections.adapters.memory import MemoryProjectionStore
from projections.adapters.postgres import PostgresProjectionStore
from projections.ports import ProjectionStore
from projections.predictions import Model, ModelParams
from projections.profile import Profile


class StoreContract:
    @pytest.fixture
    def store(self) -> Iterator[ProjectionStore]:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_profiles_round_trip(self, store: ProjectionStore) -> None:
        p = Profile(
            "c-1",
            first_seen=1,
            last_seen=5,
            event_count=2,
            counts_by_type={"purchase": 2},
            recent=[("e1", "purchase", "web", 1)],
            window_purchases=[(1, 10.5)],
            purchase_total=21.0,
            order_count=2,
        )
        with store.transaction() as tx:
            tx.save_profiles([p])
        assert store.get("c-1") == p
        assert store.get("nobody") is None

    def test_offsets_start_at_zero_and_advance(self, store: ProjectionStore) -> None:
        with store.transaction() as tx:
            assert tx.lock_offsets("proc", TOUCHPOINTS, [0, 1]) == {0: 0, 1: 0}
            tx.save_offsets("proc", TOUCHPOINTS, {0: 7, 1: 3})
        assert store.offsets("proc", TOUCHPOINTS) == {0: 7, 1: 3}

    def test_a_failed_batch_leaves_nothing(self, store: ProjectionStore) -> None:
        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction() as tx:
            tx.lock_offsets("proc", TOUCHPOINTS, [0])
            tx.save_profiles([Profile("c-1", event_count=1)])
            tx.save_offsets("proc", TOUCHPOINTS, {0: 1})
            tx.save_clock("proc", 99)
            raise Boom
        assert store.get("c-1") is None
        assert store.offsets("proc", TOUCHPOINTS) == {}
        assert store.clock("proc") is None

    def test_clock_never_goes_backwards(self, store: ProjectionStore) -> None:
        with store.transaction() as tx:
            tx.save_clock("proc", 100)
        with store.transaction() as tx:
            tx.save_clock("proc", 50)
        assert store.clock("proc") == 100

    def test_partition_clocks_advance_with_their_offsets_and_never_go_back(
        self, store: ProjectionStore
    ) -> None:
        with store.transaction() as tx:
            tx.lock_offsets("proc", TOUCHPOINTS, [0, 1, 2])
            assert tx.partition_clocks("proc", TOUCHPOINTS, [0, 1, 2]) == {}
            tx.save_partition_clocks("proc", TOUCHPOINTS, {0: 100, 2: 7})
        with store.transaction() as tx:
            tx.save_partition_clocks("proc", TOUCHPOINTS, {0: 50, 1: 9})
            assert tx.partition_clocks("proc", TOUCHPOINTS, [0, 1, 2]) == {0: 100, 1: 9, 2: 7}
            assert tx.partition_clocks("proc", TOUCHPOINTS, [1]) == {1: 9}

    def test_partition_models_are_kept_with_the_offsets(self, store: ProjectionStore) -> None:
        params = ModelParams(r=0.2, alpha=30.0, a=0.8, b=2.4, p=6.0, q=3.7, gamma=15.0)
        first, second = Model(1, params, 10), Model(2, params, None)
        with store.transaction() as tx:
            tx.lock_offsets("proc", TOUCHPOINTS, [0, 1, 2])
            assert tx.partition_models("proc", TOUCHPOINTS, [0, 1, 2]) == {}
            tx.save_partition_models("proc", TOUCHPOINTS, {0: first, 2: first})
        with store.transaction() as tx:
            tx.save_partition_models("proc", TOUCHPOINTS, {2: second})
            assert tx.partition_models("proc", TOUCHPOINTS, [0, 1, 2]) == {0: first, 2: second}
        assert store.model("proc") == second
        assert store.model("other") is None

    def test_repeat_buyers_have_two_or_more_purchase_days(self, store: ProjectionStore) -> None:
        with store.transaction() as tx:
            tx.save_profiles(
                [
                    Profile("one-day", order_count=2, purchase_days=[5]),
                    Profile("two-days", order_count=2, purchase_days=[5, 9]),
                    Profile("unknown", order_count=4, purchase_days=None),
                    Profile("prospect"),
                ]
            )
            assert tx.repeat_buyers() == ["two-days"]

    def test_timers_are_replaced_per_customer_and_loaded_per_partition(
        self, store: ProjectionStore
    ) -> None:
        with store.transaction() as tx:
            tx.save_timers(["a", "b"], [("a", "r1", 10, 0), ("a", "r2", 20, 0), ("b", "r1", 30, 1)])
        with store.transaction() as tx:
            tx.save_timers(["a"], [("a", "r2", 25, 0)])
            assert sorted(tx.load_timers([0])) == [("a", "r2", 25, 0)]
            assert sorted(tx.load_timers([0, 1])) == [("a", "r2", 25, 0), ("b", "r1", 30, 1)]
            tx.save_timers(["b"], [])
            assert tx.load_timers([1]) == []

    def test_conversions_are_recorded_once_and_only_with_their_batch(
        self, store: ProjectionStore
    ) -> None:
        class Boom(Exception):
            pass

        first = TriggerConverted("t1", "win-back-90d", "control", "c-1", "e9", 20, 10, 70.0)
        other = TriggerConverted("t0", "thank-you", "treatment", "c-2", "e3", 8, 5, None)
        with pytest.raises(Boom), store.transaction() as tx:
            tx.save_conversions([first])
            raise Boom
        assert store.conversions() == []
        with store.transaction() as tx:
            tx.save_conversions([first, other])
        with store.transaction() as tx:  # a redelivered batch
            tx.save_conversions([replace(first, event_id="e10", converted_at=30)])
        assert store.conversions() == [other, first]
        assert store.conversions()[1].time_to_convert == 10

    def test_consumers_and_clocks_are_read_back(self, store: ProjectionStore) -> None:
        assert store.consumers() == [] and store.clocks() == {}
        with store.transaction() as tx:
            tx.lock_offsets("proc", TOUCHPOINTS, [0, 1])
            tx.save_offsets("proc", TOUCHPOINTS, {0: 7, 1: 3})
            tx.save_clock("proc", 42)
        assert store.consumers() == [("proc", TOUCHPOINTS, 10)]
        assert store.clocks() == {"proc": 42}

    def test_search_finds_ids_by_prefix_ignoring_case(self, store: ProjectionStore) -> None:
        with store.transaction() as tx:
            tx.save_profiles(
                [Profile(c, last_seen=n) for n, c in enumerate(["ann-2", "ann-1", "bob", "an_x"])]
            )
        assert store.search("ANN", 10) == [("ann-1", 1), ("ann-2", 0)]
        assert store.search("ann", 1) == [("ann-1", 1)]
        assert store.search("an_", 10) == [("an_x", 3)]  # no wildcard in the prefix
        assert store.search("zed", 10) == []

    def test_trigger_counts_and_histogram_come_from_the_outbox(
        self, store: ProjectionStore
    ) -> None:
        fired = [
            ("t1", "thanks", 5),
            ("t2", "thanks", 15),
            ("t3", "churn", 12),
            ("t4", "thanks", 19),
        ]
        triggers = [
            (TriggerEvent(tid, rule, 1, "marketing", "c-1", at, ("e",), {}), b"payload")
            for tid, rule, at in fired
        ]
        with store.transaction() as tx:
            tx.add_outbox(triggers)
            tx.add_outbox(triggers[:1])  # a trigger_id already there is ignored
        assert store.trigger_counts() == {"churn": 1, "thanks": 3}
        assert store.trigger_histogram(10, None) == [
            ("thanks", 0, 1),
            ("churn", 10, 1),
            ("thanks", 10, 2),
        ]
        assert store.trigger_histogram(10, 13) == [("thanks", 10, 2)]

    def test_storage_errors_are_engage_errors(self, store: ProjectionStore) -> None:
        with pytest.raises(EngageError), store.transaction() as tx:
            tx.save_offsets("proc", TOUCHPOINTS, {0: "not a number"})  # type: ignore[dict-item]


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[ProjectionStore]:
        yield MemoryProjectionStore()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, database: str) -> Iterator[ProjectionStore]:
        opened = PostgresProjectionStore(database)
        yield opened
        opened.close()
