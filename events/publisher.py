"""Publishing: JSON Lines in, validated touchpoints onto the log.

Bad lines never stop a file: each is reported with its line number, field and
reason and kept with its raw text in the dead-letter store, and the valid lines
around it are appended. Lines are handled in batches so encoding and the
append round trip are amortised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from events.codec import CodecError, TouchpointCodec
from events.dead_letters import DeadLetterRow, DeadLetterSink
from events.ingest import Rejection, parse_line
from events.limits import TimeWindow, dumps_any
from events.log import TOUCHPOINTS, Entry, Log
from events.model import Touchpoint

BATCH = 5_000

Origin = tuple[int | None, object]
"""Where an event came from: (line number, raw text or the decoded JSON value)."""

Parsed = tuple[int | None, Touchpoint | Rejection | None, str, int]
"""One validated input: (line number, the result or None for a blank line,
its raw text, the bytes it took)."""


@dataclass(slots=True)
class PublishReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    lines: int = 0

    KEEP = 1_000
    """Rejections kept in memory for the report; all of them go to the DLQ."""


def rejection_row(rejection: Rejection, source: str | None, stage: str = "ingest") -> DeadLetterRow:
    return (
        stage,
        _text(source),
        rejection.line_no,
        _text(rejection.event_id),
        rejection.field,
        rejection.reason.replace("\x00", "\\u0000"),
        rejection.raw.replace("\x00", "\\u0000"),
    )


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; keep it visible as the JSON escape."""
    return None if value is None else value.replace("\x00", "\\u0000")


class Publisher:
    """``window`` bounds ``occurred_at`` (see ``events.limits``); the composition
    root builds it from the wall clock or ``--now``."""

    def __init__(
        self,
        log: Log,
        dead_letters: DeadLetterSink,
        codec: TouchpointCodec,
        window: TimeWindow | None = None,
    ) -> None:
        self.log = log
        self.dead_letters = dead_letters
        self.codec = codec
        self.window = window

    def publish_events(
        self,
        events: Sequence[Touchpoint],
        rejections: Sequence[Rejection],
        source: str | None,
        origins: Sequence[Origin] | None = None,
    ) -> PublishReport:
        """Append valid events and dead-letter rejections (one batch).

        ``origins`` (parallel to ``events``: line number and raw text or
        decoded value) is what an event the codec refuses is dead-lettered
        with; its rejection is in ``report.rejections`` with that line."""
        report = PublishReport()
        self._flush(list(events), list(rejections), source, report, origins)
        return report

    def publish_lines(
        self,
        lines: Iterable[str | bytes],
        source: str | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> PublishReport:
        """Publish JSON Lines; ``on_progress(lines, bytes)`` is called per batch."""
        return self.publish_parsed(self._parse_lines(lines), source, on_progress)

    def _parse_lines(self, lines: Iterable[str | bytes]) -> Iterator[Parsed]:
        for line_no, line in enumerate(lines, start=1):
            if isinstance(line, bytes):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raw = line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                    reason = f"not valid UTF-8: {exc.reason} at byte {exc.start}"
                    yield line_no, Rejection(line_no, "(line)", reason, raw), raw, len(line)
                    continue
            else:
                text = line
            if not text.strip():
                yield line_no, None, "", len(line)
                continue
            text = text.rstrip("\r\n")
            yield line_no, parse_line(text, line_no, self.window), text, len(line)

    def publish_parsed(
        self,
        items: Iterable[Parsed],
        source: str | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> PublishReport:
        """Publish already validated inputs in batches (JSON Lines, CSV rows):
        each is (line number, touchpoint, rejection or None for nothing, raw
        text, bytes consumed). ``on_progress(lines, bytes)`` is called per batch."""
        report = PublishReport()
        events: list[Touchpoint] = []
        origins: list[Origin] = []
        rejections: list[Rejection] = []
        consumed = 0
        for line_no, item, raw, size in items:
            consumed += size
            if line_no is not None:
                report.lines = line_no
            if item is None:
                continue
            if isinstance(item, Rejection):
                rejections.append(item)
            else:
                events.append(item)
                origins.append((line_no, raw))
            if len(events) + len(rejections) >= BATCH:
                self._flush(events, rejections, source, report, origins)
                events, origins, rejections = [], [], []
                if on_progress is not None:
                    on_progress(report.lines, consumed)
                    consumed = 0
        self._flush(events, rejections, source, report, origins)
        if on_progress is not None:
            on_progress(report.lines, consumed)
        return report

    def _flush(
        self,
        events: list[Touchpoint],
        rejections: list[Rejection],
        source: str | None,
        report: PublishReport,
        origins: Sequence[Origin] | None = None,
    ) -> None:
        if events:
            events, payloads, failed = self._encode(events, origins)
            rejections = rejections + failed
        if rejections:
            self.dead_letters.add([rejection_row(r, source) for r in rejections])
            report.rejected += len(rejections)
            room = PublishReport.KEEP - len(report.rejections)
            report.rejections.extend(rejections[: max(0, room)])
        if events:
            entries = [
                Entry(e.event_id, e.customer_id, payload, e.occurred_at, e.type)
                for e, payload in zip(events, payloads, strict=True)
            ]
            result = self.log.append(TOUCHPOINTS, entries)
            report.accepted += result.accepted
            report.duplicates += len(result.duplicates)
            room = PublishReport.KEEP - len(report.duplicate_ids)
            report.duplicate_ids.extend(result.duplicates[: max(0, room)])

    def _encode(
        self, events: list[Touchpoint], origins: Sequence[Origin] | None
    ) -> tuple[list[Touchpoint], list[bytes], list[Rejection]]:
        """Encode a batch; an event the codec refuses is rejected on its own
        (to the DLQ with the reason), never the batch around it."""
        try:
            return events, self.codec.encode_many(events), []
        except CodecError:
            pass
        kept: list[Touchpoint] = []
        payloads: list[bytes] = []
        failed: list[Rejection] = []
        for i, event in enumerate(events):
            try:
                payloads.extend(self.codec.encode_many([event]))
            except CodecError as exc:
                line_no, raw = origins[i] if origins is not None else (None, repr(event))
                text = raw if isinstance(raw, str) else dumps_any(raw)
                reason = f"cannot be stored: {exc}"
                failed.append(Rejection(line_no, "(event)", reason, text, event.event_id))
            else:
                kept.append(event)
        return kept, payloads, failed
