"""Publishing: JSON Lines in, validated touchpoints onto the log.

Bad lines never stop a file: each is reported with its line number, field and
reason and kept with its raw text in the dead-letter store, and the valid lines
around it are appended. Lines are handled in batches so encoding and the
append round trip are amortised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from events.codec import TouchpointCodec
from events.dead_letters import DeadLetterRow, DeadLetterSink
from events.ingest import Rejection, parse_line
from events.log import TOUCHPOINTS, Entry, Log
from events.model import Touchpoint

BATCH = 5_000


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
    def __init__(self, log: Log, dead_letters: DeadLetterSink, codec: TouchpointCodec) -> None:
        self.log = log
        self.dead_letters = dead_letters
        self.codec = codec

    def publish_events(
        self, events: Sequence[Touchpoint], rejections: Sequence[Rejection], source: str | None
    ) -> PublishReport:
        """Append valid events and dead-letter rejections (one batch)."""
        report = PublishReport()
        self._flush(list(events), list(rejections), source, report)
        return report

    def publish_lines(
        self,
        lines: Iterable[str | bytes],
        source: str | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> PublishReport:
        """Publish JSON Lines; ``on_progress(lines, bytes)`` is called per batch."""
        report = PublishReport()
        events: list[Touchpoint] = []
        rejections: list[Rejection] = []
        consumed = 0
        for line_no, line in enumerate(lines, start=1):
            consumed += len(line)
            report.lines = line_no
            if isinstance(line, bytes):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raw = line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                    rejections.append(
                        Rejection(
                            line_no,
                            "(line)",
                            f"not valid UTF-8: {exc.reason} at byte {exc.start}",
                            raw,
                        )
                    )
                    continue
            else:
                text = line
            if not text.strip():
                continue
            item = parse_line(text.rstrip("\r\n"), line_no)
            if isinstance(item, Rejection):
                rejections.append(item)
            else:
                events.append(item)
            if len(events) + len(rejections) >= BATCH:
                self._flush(events, rejections, source, report)
                events, rejections = [], []
                if on_progress is not None:
                    on_progress(line_no, consumed)
                    consumed = 0
        self._flush(events, rejections, source, report)
        if on_progress is not None:
            on_progress(report.lines, consumed)
        return report

    def _flush(
        self,
        events: list[Touchpoint],
        rejections: list[Rejection],
        source: str | None,
        report: PublishReport,
    ) -> None:
        if rejections:
            self.dead_letters.add([rejection_row(r, source) for r in rejections])
            report.rejected += len(rejections)
            room = PublishReport.KEEP - len(report.rejections)
            report.rejections.extend(rejections[: max(0, room)])
        if events:
            payloads = self.codec.encode_many(events)
            entries = [
                Entry(e.event_id, e.customer_id, payload, e.occurred_at, e.type)
                for e, payload in zip(events, payloads, strict=True)
            ]
            result = self.log.append(TOUCHPOINTS, entries)
            report.accepted += result.accepted
            report.duplicates += len(result.duplicates)
            room = PublishReport.KEEP - len(report.duplicate_ids)
            report.duplicate_ids.extend(result.duplicates[: max(0, room)])
