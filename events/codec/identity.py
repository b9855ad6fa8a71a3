"""``identity_linked`` and ``identity_unlinked`` <-> single-object Avro.

Each has its own schema (``engage.IdentityLinked``, ``engage.IdentityUnlinked``)
and so its own fingerprint: a reader of touchpoints tells them apart by the
first ten bytes, as it does clock records (``events.control``).
"""

from __future__ import annotations

from functools import cache
from typing import Final, TypeVar

from events.codec.framing import DataclassCodec
from events.identity import IdentityLinked, IdentityRecord, IdentityUnlinked

LINKED_SCHEMA: Final = "engage.IdentityLinked"
UNLINKED_SCHEMA: Final = "engage.IdentityUnlinked"

R = TypeVar("R", bound=IdentityRecord)


class IdentityCodec(DataclassCodec[R]):
    """Both records start with ``source`` and name the person and identifier."""

    _first_field = "source"

    def _key(self, value: R) -> str:
        return f"{value.kind}:{value.value} of {value.person_id}"


class IdentityLinkedCodec(IdentityCodec[IdentityLinked]):
    _schema_name = LINKED_SCHEMA
    _type = IdentityLinked
    _fields = ("source", "person_id", "kind", "value", "evidence", "at")


class IdentityUnlinkedCodec(IdentityCodec[IdentityUnlinked]):
    _schema_name = UNLINKED_SCHEMA
    _type = IdentityUnlinked
    _fields = ("source", "person_id", "kind", "value", "reason", "at")


@cache
def linked_codec() -> IdentityLinkedCodec:
    return IdentityLinkedCodec()


@cache
def unlinked_codec() -> IdentityUnlinkedCodec:
    return IdentityUnlinkedCodec()
