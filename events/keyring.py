"""Person keys: the ``KeyRing`` port and the AES-GCM primitives around it.

Crypto-shredding: every personal field on the log is encrypted with a data
key of its own person (``events.sealing``), and erasing the person destroys
that key, so every copy of their text anywhere (the PostgreSQL log, a Kafka
topic, a backup) becomes unreadable at once, without rewriting an immutable
log. Data keys are kept wrapped (AES-GCM) by one master key
(``events.master_key``), so the database alone never holds a usable key.

All cryptography is the ``cryptography`` package's AES-GCM: 256-bit keys,
96-bit random nonces, the tag checked on every open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from events.errors import EngageError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
VERSION: Final = 1
"""The first byte of every sealed blob: the layout below, so it can change."""
HEADER: Final = 1 + 8 + NONCE_BYTES
"""version (1) + key id (8, big-endian) + nonce (12); the AES-GCM output follows."""


class PrivacyError(EngageError):
    """A master key that is missing or wrong, or a sealed value that cannot be
    opened for a reason other than an erased person."""


@dataclass(frozen=True, slots=True)
class PersonKey:
    """One person's unwrapped data key, ready to seal and open."""

    key_id: int
    person: str
    cipher: AESGCM


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def wrap(master: AESGCM, person: str, data_key: bytes) -> bytes:
    """The data key encrypted by the master key, bound to its person (AAD),
    so a wrapped key copied onto another person's row does not open."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + master.encrypt(nonce, data_key, person.encode("utf-8"))


def unwrap(master: AESGCM, person: str, wrapped: bytes) -> bytes:
    try:
        return master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], person.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise PrivacyError(
            f"the person key of {person!r} does not open with this master key: "
            "ENGAGE_MASTER_KEY (or the master.key file) is not the one the keys were made with"
        ) from None


def nonces(n: int) -> list[bytes]:
    """``n`` random 96-bit nonces from one call to the OS (a call per nonce
    costs as much as the encryption itself)."""
    pool = os.urandom(NONCE_BYTES * n)
    return [pool[i : i + NONCE_BYTES] for i in range(0, NONCE_BYTES * n, NONCE_BYTES)]


def seal(key: PersonKey, plaintext: bytes, context: bytes, nonce: bytes | None = None) -> bytes:
    """AES-GCM with the person's key; ``context`` (an event id) is bound as
    associated data, so a sealed value moved onto another event fails to open.
    ``nonce``: a fresh random one from ``nonces``, else one is drawn here."""
    nonce = nonce or os.urandom(NONCE_BYTES)
    head = bytes((VERSION,)) + key.key_id.to_bytes(8, "big") + nonce
    return head + key.cipher.encrypt(nonce, plaintext, context)


def key_id_of(blob: bytes) -> int | None:
    """The key a sealed blob needs, or None when it is not one of ours."""
    if len(blob) < HEADER + 16 or blob[0] != VERSION:
        return None
    return int.from_bytes(blob[1:9], "big")


def open_sealed(cipher: AESGCM, blob: bytes, context: bytes) -> bytes | None:
    """The plaintext, or None when the tag does not check (tampered or moved)."""
    try:
        return cipher.decrypt(blob[9:HEADER], blob[HEADER:], context)
    except InvalidTag:
        return None


def pseudonymizer(master: bytes) -> Callable[[str], str]:
    """Keyed pseudonyms for identifiers that are personal (emails): HMAC-SHA-256
    under a key derived from the master key by HKDF. The identity store keeps
    and looks up an email only this way, so no table holds it in clear, and
    without the master key nobody can test a guess against it."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"engage identity pseudonyms v1"
    ).derive(master)

    def pseudonym(text: str) -> str:
        mac = hmac.HMAC(derived, hashes.SHA256())
        mac.update(text.encode("utf-8"))
        return "hmac:" + mac.finalize()[:16].hex()

    return pseudonym


class KeyRing(Protocol):
    """Where person keys live. ``keys_for`` creates missing keys (publishing);
    ``keys_by_id`` only finds (reading: an erased person's key is gone, so
    their id is simply absent from the answer). Both answer a whole batch in
    one round trip, and neither caches between calls, so a destroyed key is
    never used again after the erasure commits."""

    def keys_for(self, persons: Collection[str]) -> dict[str, PersonKey]: ...

    def keys_by_id(self, key_ids: Collection[int]) -> dict[int, PersonKey]: ...

    def suppressed(self, persons: Collection[str]) -> set[str]:
        """The persons among ``persons`` whose new events are refused (erased)."""
        ...

    def destroy(self, person: str) -> int:
        """Delete the person's key (crypto-shredding); how many were deleted."""
        ...

    def suppress(self, person: str) -> None: ...

    def unsuppress(self, person: str) -> bool:
        """Lift the suppression; False when there was none."""
        ...

    def pseudonym(self, text: str) -> str:
        """``text``'s keyed pseudonym (``pseudonymizer``), the same for every call."""
        ...

    def key_info(self, person: str) -> Mapping[str, object] | None:
        """What is held about the person's key (id, created), for an access export."""
        ...
