"""Decoding a batch's log records for the pipeline, and cutting it where a
record changes who is who (an erasure, an identity record): what
``consumers.pipeline`` reads before ``decide``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from consumers.identity_changes import IdentityMark
from events.clock import clock_codec
from events.codec import HEADER_SIZE, CodecError
from events.codec.identity import linked_codec, unlinked_codec
from events.control import (
    is_identity,
    is_linked,
    is_model_fitted,
    model_codec,
    not_touchpoint_headers,
)
from events.dead_letters import DeadLetterRow
from events.log import LogRecord
from events.model import ModelFitted, SubjectErased, Touchpoint
from events.subject_erased import erased_codec, is_subject_erased
from projections.ports import UnitOfWork
from rules.decide import Outcome, Record, model_of

Decoded = Record | SubjectErased | IdentityMark
"""A decoded log record: what ``decide`` takes, or what cuts a batch."""

Segment = tuple[list[tuple[int, Record]], list[str], list[IdentityMark]]


@dataclass(slots=True)
class DecodedBatch:
    """A batch's records decoded, with what one walk over them saw."""

    next_offsets: dict[int, int]
    records: list[tuple[int, Decoded]] = field(default_factory=list)
    poison: list[DeadLetterRow] = field(default_factory=list)
    marks: list[IdentityMark] = field(default_factory=list)
    """Its identity records, in log order."""
    rekey_at: list[tuple[int, str]] = field(default_factory=list)
    """(index in ``records``, the person it was appended under) of each event
    appended under a person that is not its customer id
    (``projections.identity_router``): ``rekey`` folds it as the person's."""
    erasures: bool = False
    """It holds a ``subject_erased`` record."""
    fitted: bool = False
    """It holds a ``model_fitted`` record."""


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


def decode_batch(
    records: Sequence[LogRecord],
    positions: Mapping[int, int],
    stream: str,
    decode_touchpoints: Callable[[list[bytes]], Sequence[Touchpoint | CodecError | None]],
) -> DecodedBatch:
    """(partition, record) in log order, the poison rows, the next offsets,
    and what the walk saw that cuts the batch (identity records, erasures,
    fitted models), so the pipeline needs no second pass. Touchpoints are
    decoded in one call (``decode_touchpoints``; None: a repeated id)."""
    heads = not_touchpoint_headers()
    payloads = [r.payload for r in records]
    control_at = [i for i, p in enumerate(payloads) if p[:HEADER_SIZE] in heads]
    decoded: list[Decoded | CodecError | None]
    if control_at:
        # touchpoints decoded in one call, control records spliced back in by
        # slices (a delete or insert per record would move the whole list)
        plain: list[bytes] = []
        done = 0
        for i in control_at:
            plain += payloads[done:i]
            done = i + 1
        plain += payloads[done:]
        touchpoints = decode_touchpoints(plain)
        decoded = []
        done = taken = 0
        for i in control_at:
            decoded += touchpoints[taken : taken + i - done]
            taken += i - done
            decoded.append(decode_control(records[i]))
            done = i + 1
        decoded += touchpoints[taken:]
    else:
        decoded = list(decode_touchpoints(payloads))
    out = DecodedBatch(dict(positions))
    batch = out.records
    rekey_at = out.rekey_at
    next_offsets = out.next_offsets
    for record, item in zip(records, decoded, strict=True):
        partition = record.partition
        if record.offset >= next_offsets.get(partition, 0):
            next_offsets[partition] = record.offset + 1
        kind = type(item)
        if kind is Touchpoint:
            if record.key and record.key != item.customer_id:  # type: ignore[union-attr]
                rekey_at.append((len(batch), record.key))
        elif item is None:  # a repeated event_id (drop_repeated_ids)
            continue
        elif isinstance(item, CodecError):
            out.poison.append(
                (
                    "process",
                    f"{stream}[{partition}]@{record.offset}",
                    None,
                    None,
                    "(payload)",
                    str(item),
                    record.payload.hex(),
                )
            )
            continue
        elif kind is IdentityMark:
            out.marks.append(item)  # type: ignore[arg-type]
        elif kind is SubjectErased:
            out.erasures = True
        elif kind is ModelFitted:
            out.fitted = True
        batch.append((partition, item))  # type: ignore[arg-type]
    return out


def rekey(batch: list[tuple[int, Decoded]], rekey_at: Sequence[tuple[int, str]]) -> None:
    """Events appended under their person are folded as the person's: done
    in place once the batch is opened (``events.sealing`` sealed each event
    with its own customer id's key, so it is opened under that id)."""
    for i, key in rekey_at:
        partition, event = batch[i]
        batch[i] = (partition, replace(cast(Touchpoint, event), customer_id=key))


def decode_control(record: LogRecord) -> Decoded | CodecError:
    """A control or identity record, or the reason it is poison: a
    model_fitted record's parameters are checked here, so ``decide`` can take
    them as they come."""
    payload = record.payload
    try:
        if is_identity(payload):
            found = (
                linked_codec().decode(payload)
                if is_linked(payload)
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
