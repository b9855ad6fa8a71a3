"""Decoding a batch's log records for the pipeline, and cutting it where a
record changes who is who (an erasure, an identity record): what
``consumers.pipeline`` reads before ``decide``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar, cast

from consumers.identity_changes import IdentityMark
from events.clock import clock_codec
from events.codec import CodecError
from events.codec.identity import linked_codec, unlinked_codec
from events.control import is_identity, is_model_fitted, model_codec
from events.log import LogRecord
from events.model import ModelFitted, SubjectErased, Touchpoint
from events.subject_erased import erased_codec, is_subject_erased
from projections.ports import UnitOfWork
from rules.decide import Outcome, Record, model_of

Decoded = Record | SubjectErased | IdentityMark
"""A decoded log record: what ``decide`` takes, or what cuts a batch."""

Segment = tuple[list[tuple[int, Record]], list[str], list[IdentityMark]]


def segments_of(decoded: list[tuple[int, Decoded]]) -> list[Segment]:
    """The batch cut after each run of ``subject_erased`` and identity
    records: (records, persons erased right after them, identity records
    right after them). Nearly always one segment with nothing after it; a
    person's events after their erasure (unsuppressed) then start a fresh
    profile, as they do when they come in a later batch, and the events after
    a merge meet the re-derived person."""
    segments: list[Segment] = []
    current: list[tuple[int, Record]] = []
    for partition, record in decoded:
        if isinstance(record, SubjectErased | IdentityMark):
            if current or not segments:
                segments.append((current, [], []))
                current = []
            if isinstance(record, SubjectErased):
                segments[-1][1].append(record.person)
            else:
                segments[-1][2].append(record)
        else:
            current.append((partition, record))
    if current or not segments:
        segments.append((current, [], []))
    return segments


T = TypeVar("T", bound=Decoded)


def rekeyed(batch: list[tuple[int, T]], rekey: Mapping[str, str]) -> list[tuple[int, T]]:
    """Events appended under their person (``projections.identity_router``)
    are folded as the person's."""
    out: list[tuple[int, T]] = []
    for partition, record in batch:
        if isinstance(record, Touchpoint):
            key = rekey.get(record.event_id)
            if key is not None:
                out.append((partition, cast(T, replace(record, customer_id=key))))
                continue
        out.append((partition, record))
    return out


def decode_control(record: LogRecord) -> Decoded | CodecError:
    """A control or identity record, or the reason it is poison: a
    model_fitted record's parameters are checked here, so ``decide`` can take
    them as they come."""
    payload = record.payload
    try:
        if is_identity(payload):
            linked = linked_codec()
            found = (
                linked.decode(payload)
                if payload.startswith(linked._header)
                else unlinked_codec().decode(payload)
            )
            return IdentityMark(record.key, record.partition, record.offset, found)
        if is_subject_erased(payload):
            return erased_codec().decode(payload)
        if not is_model_fitted(payload):
            return clock_codec().decode(payload)
        fitted = model_codec().decode(payload)
        model_of(fitted, None)
    except CodecError as exc:
        return exc
    except (ValueError, TypeError) as exc:
        return CodecError(f"model_fitted: {exc}")
    return fitted


def per_person(decoded: list[tuple[int, Decoded]]) -> bool:
    """Whether a batch with identity records can be decided per person: not
    when it also holds an erasure or a fitted model (rare; those cut the
    whole batch instead)."""
    return not any(isinstance(r, SubjectErased | ModelFitted) for _, r in decoded)


def drop_erased(outcome: Outcome, erased: set[str]) -> None:
    """What a run decided about persons erased further on in the batch: their
    profiles, timers and triggers are dropped (never written, never fired)."""
    for person in erased:
        outcome.profiles.pop(person, None)
        outcome.timers.pop(person, None)
    outcome.triggers = [t for t in outcome.triggers if t.customer_id not in erased]


def drop_repeats(
    tx: UnitOfWork, decoded: list[Touchpoint | CodecError]
) -> list[Touchpoint | CodecError | None]:
    """None in place of every event whose id was applied before (or earlier
    in this batch); the first occurrence is the one kept."""
    fresh = tx.claim_event_ids([i.event_id for i in decoded if not isinstance(i, CodecError)])
    out: list[Touchpoint | CodecError | None] = []
    for item in decoded:
        if isinstance(item, CodecError):
            out.append(item)
        elif item.event_id in fresh:
            fresh.discard(item.event_id)
            out.append(item)
        else:
            out.append(None)
    return out
