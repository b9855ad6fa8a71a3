"""The identity store's contract (``projections.identity_ports``), run on
both adapters: memory and PostgreSQL.

A difference between them is a declared capability, not an override: the
PostgreSQL store over the PostgreSQL log appends inside its transaction
(``appends_in_transaction``); the memory store never does.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from events.identity import ANONYMOUS_ID, CUSTOMER_ID, EMAIL, Evidence, Identifier
from events.log import TOUCHPOINTS, Entry
from projections.adapters.memory_identity import MemoryIdentityStore
from projections.adapters.postgres_identity import PostgresIdentityStore
from projections.identity import IdentityGraph
from projections.identity_ports import IdentityStore


def _pseudonym(text: str) -> str:
    return "p:" + text[::-1]


def _link(graph: IdentityGraph, event_id: str, at: int, *ids: Identifier) -> None:
    graph.apply(Evidence(event_id, at, ids))


def _fold_in(store: IdentityStore, *evidence: Evidence) -> None:
    """One publish's identity transaction: load what the evidence names,
    fold it, save what changed."""
    with store.transaction() as tx:
        graph = IdentityGraph(tx.load({i for e in evidence for i in e.identifiers}))
        for item in evidence:
            graph.apply(item)
        tx.save(graph)


C1 = Identifier(CUSTOMER_ID, "c-1")
D1 = Identifier(ANONYMOUS_ID, "d-1")
D2 = Identifier(ANONYMOUS_ID, "d-2")


class IdentityStoreContract:
    appends_in_transaction: bool = False

    @pytest.fixture
    def store(self) -> Iterator[IdentityStore]:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def other(self, store: IdentityStore) -> Iterator[IdentityStore]:  # pragma: no cover
        """A second handle on the same store (another publisher process)."""
        raise NotImplementedError

    def _seed(self, store: IdentityStore) -> None:
        email = Identifier(EMAIL, store.pseudonym(" Ann@Example.com "))
        with store.transaction() as tx:
            graph = IdentityGraph(tx.load({C1, D1, D2, email}))
            _link(graph, "e1", 10, D1)
            _link(graph, "e2", 20, C1, D1)
            _link(graph, "e3", 30, D2, email)
            _link(graph, "e4", 40, C1, email)
            tx.save(graph)

    def test_any_identifier_names_the_person(self, store: IdentityStore) -> None:
        self._seed(store)
        for name in ("c-1", "d-1", "d-2", "ann@example.com", "  ANN@example.COM"):
            person = store.find(name)
            assert person is not None and person.person_id == "c-1", name
        assert store.find("nobody") is None
        person = store.find("c-1")
        assert person is not None
        emails = [i for i in person.identifiers if i.kind == EMAIL]
        assert emails == [Identifier(EMAIL, store.pseudonym("ann@example.com"))]
        assert "example" not in emails[0].value
        assert person.merged_from == ("d-1", "d-2")

    def test_persons_by_id_and_loads_by_identifier(self, store: IdentityStore) -> None:
        self._seed(store)
        assert set(store.persons(["c-1", "d-2", "nobody"])) == {"c-1"}
        email = Identifier(EMAIL, store.pseudonym("ann@example.com"))
        assert store.identifiers(["c-1", "nobody"]) == {"c-1": frozenset({C1, D1, D2, email})}
        with store.transaction() as tx:
            loaded = tx.load({D2, Identifier(ANONYMOUS_ID, "unknown")})
            assert [p.person_id for p in loaded] == ["c-1"]
            assert tx.find("d-1") == store.find("d-1")

    def test_a_merge_removes_the_absorbed_person(self, store: IdentityStore) -> None:
        with store.transaction() as tx:
            graph = IdentityGraph()
            _link(graph, "e1", 10, D1)
            _link(graph, "e2", 11, D2)
            tx.save(graph)
        assert set(store.persons(["d-1", "d-2"])) == {"d-1", "d-2"}
        with store.transaction() as tx:
            graph = IdentityGraph(tx.load({C1, D1, D2}))
            _link(graph, "e3", 20, C1, D1)
            _link(graph, "e4", 21, C1, D2)
            tx.save(graph)
        assert set(store.persons(["c-1", "d-1", "d-2"])) == {"c-1"}

    def test_a_failed_transaction_changes_nothing(self, store: IdentityStore) -> None:
        self._seed(store)

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction() as tx:
            graph = IdentityGraph(tx.load({D2}))
            _link(graph, "e9", 90, Identifier(CUSTOMER_ID, "c-2"), D2)
            tx.save(graph)
            raise Boom
        person = store.find("d-2")
        assert person is not None and person.person_id == "c-1"
        assert store.find("c-2") is None

    def test_loads_see_what_earlier_transactions_wrote(self, store: IdentityStore) -> None:
        """A store may keep what it read or wrote between transactions (the
        PostgreSQL one does): what it loads must still be what was committed,
        merges and absorbed persons included, and never what a failed
        transaction staged."""
        _fold_in(store, Evidence("e1", 10, (D1,)), Evidence("e2", 11, (D2,)))
        _fold_in(store, Evidence("e3", 20, (C1, D1)))

        class Boom(Exception):
            pass

        c2 = Identifier(CUSTOMER_ID, "c-2")
        with pytest.raises(Boom), store.transaction() as tx:
            graph = IdentityGraph(tx.load({c2, D2}))
            _link(graph, "e4", 30, c2, D2)
            tx.save(graph)
            raise Boom
        with store.transaction() as tx:
            persons = tx.load({C1, D1, D2, c2})
        loaded = {i.value: p.person_id for p in persons for i in p.identifiers}
        assert loaded == {"c-1": "c-1", "d-1": "c-1", "d-2": "d-2"}

    def test_another_handle_sees_each_write(
        self, store: IdentityStore, other: IdentityStore
    ) -> None:
        """Two publishers on one store: each loads what the other committed
        since its own last transaction (a merge, then an erasure)."""
        _fold_in(store, Evidence("e1", 10, (D1,)), Evidence("e2", 11, (D2,)))
        _fold_in(other, Evidence("e3", 20, (C1, D1)), Evidence("e4", 21, (C1, D2)))
        with store.transaction() as tx:
            assert {p.person_id for p in tx.load({D1, D2})} == {"c-1"}
        assert other.forget("c-1") == 1
        with store.transaction() as tx:
            assert tx.load({C1, D1, D2}) == []

    def test_two_publishers_at_once_give_the_persons_of_one(
        self, store: IdentityStore, other: IdentityStore
    ) -> None:
        """Two handles publish conflict-free evidence at once, in many small
        transactions: the persons are those of one fold of all of it (a
        handle that reused what it read before the other's commit would
        overwrite a merge with a stale person)."""
        rng = random.Random(5)
        facts = []
        for c in range(12):
            customer = Identifier(CUSTOMER_ID, f"c-{c}")
            for d in range(2):
                device = Identifier(ANONYMOUS_ID, f"d-{c}-{d}")
                facts += [(device,), (device,), (customer, device), (device,)]
        rng.shuffle(facts)
        evidence = [Evidence(f"e{n}", 1000 + n, ids) for n, ids in enumerate(facts)]

        def publish(handle: IdentityStore, mine: list[Evidence]) -> None:
            for start in range(0, len(mine), 3):
                _fold_in(handle, *mine[start : start + 3])

        threads = [
            threading.Thread(target=publish, args=(handle, evidence[n::2]))
            for n, handle in enumerate((store, other))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        alone = MemoryIdentityStore()
        publish(alone, evidence)
        names = [f"c-{c}" for c in range(12)] + [f"d-{c}-{d}" for c in range(12) for d in (0, 1)]

        def shape(found: IdentityStore) -> set[tuple[str, frozenset[tuple[str, int]]]]:
            """Each person's identifiers, with when each device was first seen
            (a customer id's time names nothing and is not kept up to date)."""
            return {
                (
                    p.person_id,
                    frozenset(
                        (
                            x.identifier.value,
                            x.first_seen if x.identifier.kind == ANONYMOUS_ID else 0,
                        )
                        for x in p.links
                    ),
                )
                for p in found.persons(names).values()
            }

        assert shape(store) == shape(alone) == shape(other)
        assert len(shape(alone)) == 12

    def test_forget_deletes_the_person_and_its_identifiers(self, store: IdentityStore) -> None:
        self._seed(store)
        assert store.forget("c-1") == 1
        for name in ("c-1", "d-1", "d-2", "ann@example.com"):
            assert store.find(name) is None
        assert store.forget("c-1") == 0

    def test_append_in_the_transaction_where_the_log_is_there(self, store: IdentityStore) -> None:
        with store.transaction() as tx:
            done = tx.append(TOUCHPOINTS, [Entry("x-1", "c-1", b"payload", 1, "web_visit")], 4)
        if self.appends_in_transaction:
            assert done is not None and done.accepted == 1
        else:
            assert done is None


class TestMemoryIdentityStore(IdentityStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[IdentityStore]:
        yield MemoryIdentityStore(_pseudonym)

    @pytest.fixture
    def other(self, store: IdentityStore) -> Iterator[IdentityStore]:
        yield store  # one process, one store


class TestPostgresIdentityStore(IdentityStoreContract):
    appends_in_transaction = True

    @pytest.fixture
    def store(self, database: str) -> Iterator[IdentityStore]:
        opened = PostgresIdentityStore(database, same_database=True, pseudonym=_pseudonym)
        yield opened
        opened.close()

    @pytest.fixture
    def other(self, database: str) -> Iterator[IdentityStore]:
        opened = PostgresIdentityStore(database, same_database=True, pseudonym=_pseudonym)
        yield opened
        opened.close()
