"""``subject_erased`` records: a person's erasure, on the touchpoints log.

Destroying the person's key makes their text unreadable, but the readable
part of their events (types, amounts, times) would still rebuild a profile on
replay. This record, keyed by the person so it lands on their partition after
everything of theirs, tells the processor (and every replay, at the same
position) to forget them: profile, timers and pending triggers.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from events.codec import HEADER_SIZE, _SingleObjectCodec
from events.log import Entry
from events.model import SubjectErased

SCHEMA: Final = "engage.SubjectErased"
TYPE: Final = "~erased"
"""The ``type`` column a subject_erased record has on the PostgreSQL log."""
SOURCE: Final = "engage privacy erase"


class SubjectErasedCodec(_SingleObjectCodec[SubjectErased]):
    _schema_name = SCHEMA
    _first_field = "source"

    def _key(self, value: SubjectErased) -> str:
        return f"erasure {value.erasure_id}"

    def _to_record(self, value: SubjectErased) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "erasure_id": value.erasure_id,
            "person": value.person,
            "at": value.at,
        }

    def _from_record(self, record: dict[str, Any]) -> SubjectErased:
        return SubjectErased(record["erasure_id"], record["person"], record["at"])


@cache
def erased_codec() -> SubjectErasedCodec:
    return SubjectErasedCodec()


def is_subject_erased(payload: bytes) -> bool:
    return payload[:HEADER_SIZE] == erased_codec()._header


def erased_entry(record: SubjectErased) -> Entry:
    """The log entry; its id names the erasure, so appending it twice (a
    resumed erasure) is a duplicate on the PostgreSQL log."""
    return Entry(
        f"~erased/{record.erasure_id}",
        record.person,
        erased_codec().encode(record),
        record.at,
        TYPE,
    )
