"""The ``KeyRing`` in memory: for the pure-pipeline tests and the contract suite."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from itertools import count

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.keyring import PersonKey, new_data_key, pseudonymizer, unwrap, wrap


class MemoryKeyRing:
    def __init__(self, master: bytes | None = None) -> None:
        raw = master or new_data_key()
        self._master = AESGCM(raw)
        self.pseudonym = pseudonymizer(raw)
        self._wrapped: dict[str, tuple[int, bytes]] = {}
        self._ids = count(1)
        self._suppressed: set[str] = set()

    def keys_for(self, persons: Collection[str]) -> dict[str, PersonKey]:
        for person in persons:
            if person not in self._wrapped:
                self._wrapped[person] = (
                    next(self._ids),
                    wrap(self._master, person, new_data_key()),
                )
        return {p: self._key(p) for p in set(persons)}

    def _key(self, person: str) -> PersonKey:
        key_id, wrapped = self._wrapped[person]
        return PersonKey(key_id, person, AESGCM(unwrap(self._master, person, wrapped)))

    def keys_by_id(self, key_ids: Collection[int]) -> dict[int, PersonKey]:
        wanted = set(key_ids)
        return {
            key_id: self._key(person)
            for person, (key_id, _) in self._wrapped.items()
            if key_id in wanted
        }

    def suppressed(self, persons: Collection[str]) -> set[str]:
        return self._suppressed.intersection(persons)

    def destroy(self, person: str) -> int:
        return 1 if self._wrapped.pop(person, None) is not None else 0

    def suppress(self, person: str) -> None:
        self._suppressed.add(person)

    def unsuppress(self, person: str) -> bool:
        if person in self._suppressed:
            self._suppressed.discard(person)
            return True
        return False

    def key_info(self, person: str) -> Mapping[str, object] | None:
        found = self._wrapped.get(person)
        return None if found is None else {"key_id": found[0], "created_at": None}

    def close(self) -> None:
        pass
