"""The ``KeyRing`` contract, run on the memory and PostgreSQL adapters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.adapters.memory_keys import MemoryKeyRing
from events.adapters.postgres_keys import PostgresKeyRing
from events.keyring import KeyRing, key_id_of, open_sealed, seal
from events.master_key import MasterKeySource


class KeyRingContract:
    @pytest.fixture
    def keys(self) -> Iterator[KeyRing]:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_one_key_per_person_made_once_found_by_id(self, keys: KeyRing) -> None:
        first = keys.keys_for(["ada", "bob", "ada"])
        assert set(first) == {"ada", "bob"}
        again = keys.keys_for(["ada"])
        assert again["ada"].key_id == first["ada"].key_id
        by_id = keys.keys_by_id([first["ada"].key_id, 10**12])
        assert set(by_id) == {first["ada"].key_id}
        blob = seal(first["ada"], b"hello", b"e1")
        assert key_id_of(blob) == first["ada"].key_id
        assert open_sealed(by_id[first["ada"].key_id].cipher, blob, b"e1") == b"hello"
        assert open_sealed(by_id[first["ada"].key_id].cipher, blob, b"e2") is None
        assert keys.key_info("ada") is not None and keys.key_info("nobody") is None

    def test_a_destroyed_key_is_gone_for_good(self, keys: KeyRing) -> None:
        old = keys.keys_for(["ada"])["ada"]
        assert keys.destroy("ada") == 1
        assert keys.destroy("ada") == 0
        assert keys.keys_by_id([old.key_id]) == {}
        new = keys.keys_for(["ada"])["ada"]
        assert new.key_id != old.key_id
        assert open_sealed(new.cipher, seal(old, b"x", b"c"), b"c") is None

    def test_suppression(self, keys: KeyRing) -> None:
        assert keys.suppressed(["ada", "bob"]) == set()
        keys.suppress("ada")
        keys.suppress("ada")
        assert keys.suppressed(["ada", "bob"]) == {"ada"}
        assert keys.unsuppress("ada") is True
        assert keys.unsuppress("ada") is False
        assert keys.suppressed(["ada"]) == set()


class TestMemoryKeyRing(KeyRingContract):
    @pytest.fixture
    def keys(self) -> Iterator[KeyRing]:
        yield MemoryKeyRing()


class TestPostgresKeyRing(KeyRingContract):
    @pytest.fixture
    def keys(self, database: str, tmp_path: Path) -> Iterator[KeyRing]:
        opened = PostgresKeyRing(database, MasterKeySource(None, tmp_path))
        yield opened
        opened.close()
