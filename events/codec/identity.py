"""``identity_linked`` and ``identity_unlinked`` <-> single-object Avro.

Each has its own schema (``engage.IdentityLinked``, ``engage.IdentityUnlinked``)
and so its own fingerprint: a reader of touchpoints tells them apart by the
first ten bytes, as it does clock records (``events.control``).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from events.codec.framing import DataclassCodec
from events.identity import IdentityLinked, IdentityUnlinked

LINKED_SCHEMA: Final = "engage.IdentityLinked"
UNLINKED_SCHEMA: Final = "engage.IdentityUnlinked"


class IdentityLinkedCodec(DataclassCodec[IdentityLinked]):
    _schema_name = LINKED_SCHEMA
    _first_field = "source"
    _type = IdentityLinked
    _fields = ("source", "person_id", "kind", "value", "evidence", "at")

    def _key(self, value: IdentityLinked) -> str:
        return f"{value.kind}:{value.value} -> {value.person_id} by {value.evidence}"


class IdentityUnlinkedCodec(DataclassCodec[IdentityUnlinked]):
    _schema_name = UNLINKED_SCHEMA
    _first_field = "source"
    _type = IdentityUnlinked
    _fields = ("source", "person_id", "kind", "value", "reason", "at")

    def _key(self, value: IdentityUnlinked) -> str:
        return f"{value.kind}:{value.value} from {value.person_id}"


@cache
def linked_codec() -> IdentityLinkedCodec:
    return IdentityLinkedCodec()


@cache
def unlinked_codec() -> IdentityUnlinkedCodec:
    return IdentityUnlinkedCodec()
