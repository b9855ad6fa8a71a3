"""The master key that wraps every person key: from ``ENGAGE_MASTER_KEY`` or a
key file in ``ENGAGE_HOME``.

Losing it makes every personal field unreadable (that is what erasure does
for one person), so it is never replaced silently: a new key file is made
only for a database that has no person keys yet, and a database that has
them refuses a missing or different key with one clear line. Nothing is ever
written in plaintext instead.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.keyring import KEY_BYTES, PrivacyError

ENV: Final = "ENGAGE_MASTER_KEY"
FILE_NAME: Final = "master.key"


def parse_master_key(text: str, where: str) -> bytes:
    """32 bytes from base64 (standard or URL-safe) or 64 hex digits."""
    text = text.strip()
    try:
        if len(text) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in text):
            raw = bytes.fromhex(text)
        else:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise PrivacyError(
            f"{where} must be a 256-bit key (base64 or 64 hex digits, as "
            f"`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'` "
            "prints), got something else"
        )
    return raw


def format_master_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class MasterKeySource:
    """Where the master key comes from; read only when a person key is needed."""

    env_value: str | None
    home: Path

    @property
    def file(self) -> Path:
        return self.home / FILE_NAME

    def describe(self) -> str:
        return ENV if self.env_value else str(self.file)

    def load(self, *, may_create: bool) -> AESGCM:
        """The master cipher. ``may_create``: the database holds no person key
        yet, so a missing key file may be made (mode 0600, owner only)."""
        return AESGCM(self.load_raw(may_create=may_create))

    def load_raw(self, *, may_create: bool) -> bytes:
        """The master key's bytes (``load``; pseudonym keys are derived from them)."""
        if self.env_value:
            return parse_master_key(self.env_value, ENV)
        path = self.file
        if path.exists():
            try:
                text = path.read_text("ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise PrivacyError(f"cannot read the master key file {path}: {exc}") from None
            return parse_master_key(text, f"the master key file {path}")
        if not may_create:
            raise PrivacyError(
                f"no master key: this database's personal data is encrypted, but {ENV} is "
                f"not set and {path} does not exist (restore the key file or set {ENV})"
            )
        return self._create(path)

    @staticmethod
    def _create(path: Path) -> bytes:
        """Written to a private temporary file, then linked into place: a
        concurrent first use sees either no file or a whole one, never half."""
        raw = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(format_master_key(raw) + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:  # another process made it first: use theirs
            return parse_master_key(path.read_text("ascii"), f"the master key file {path}")
        finally:
            temp.unlink(missing_ok=True)
        return raw
