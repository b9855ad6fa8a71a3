"""Publishing: JSON Lines in, validated touchpoints onto the log.

Bad lines never stop a file: each is reported with its line number, field and
reason and kept with its raw text in the dead-letter store, and the valid lines
around it are appended. Lines are handled in batches so encoding and the
append round trip are amortised, and within one call each batch is appended
while the next one is encoded (``Publisher._overlapped``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from events.codec import CodecError, TouchpointCodec
from events.dead_letters import DeadLetterRow, DeadLetterSink
from events.gc_pacing import GcPacer
from events.ingest import Rejection, parse_line
from events.keyring import KeyRing, PersonKey
from events.limits import TimeWindow, dumps_any
from events.log import TOUCHPOINTS, Entry, Log
from events.model import Touchpoint
from events.ports import AppendResult, Router
from events.sealing import person_of, seal_events

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
        keys: KeyRing | None = None,
        router: Router | None = None,
    ) -> None:
        """``keys``: personal fields are sealed with each person's key before
        encoding (``events.sealing``), so the log only ever holds ciphertext,
        and events of erased (suppressed) persons are refused. ``router``:
        the identity stage (``projections.identity_router``), which keys each
        event by its person and appends the identity records it implies."""
        self.router = router
        self.log = log
        self.dead_letters = dead_letters
        self.codec = codec
        self.window = window
        self.keys = keys
        self._known: dict[str, PersonKey] = {}
        """Person keys unwrapped during the current publish call (never longer)."""
        self._gc = GcPacer()
        """Each batch runs with the collector paused and what survives it
        frozen: the identity stage's cache of persons grows with every new
        device, and rescanning it cost a tenth of publishing on a long history."""
        self._writer: ThreadPoolExecutor | None = None
        """Set during ``publish_parsed``: where its batches are appended."""
        self._appending: Future[None] | None = None
        """The batch being appended there (one at a time)."""

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
        self._known = {}
        try:
            self._flush(list(events), list(rejections), source, report, origins)
        finally:
            self._known = {}
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
        self._known = {}
        try:
            with self._overlapped():
                self._publish_parsed(items, source, on_progress, report)
        finally:
            self._known = {}
        return report

    @contextmanager
    def _overlapped(self) -> Iterator[None]:
        """Append each batch on a thread of its own while the next one is
        validated, sealed and encoded: an append mostly waits on the database
        or the broker, and encoding no longer waits with it (publishing ran
        22-33% faster, ``docs/performance.md``). One batch is in flight at a
        time, in input order, each in its own transaction as before, so a
        crash leaves the same state a one-thread publish would. Every append
        has finished, or raised here, when the call returns; if the call
        itself fails, the batch in flight still finishes first."""
        with ThreadPoolExecutor(1, thread_name_prefix="engage-append") as writer:
            self._writer = writer
            try:
                yield
                self._settle()
            finally:
                self._writer = None
                pending, self._appending = self._appending, None
                if pending is not None:
                    pending.exception()  # waited for; the error being raised wins

    def _publish_parsed(
        self,
        items: Iterable[Parsed],
        source: str | None,
        on_progress: Callable[[int, int], None] | None,
        report: PublishReport,
    ) -> None:
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

    def _flush(
        self,
        events: list[Touchpoint],
        rejections: list[Rejection],
        source: str | None,
        report: PublishReport,
        origins: Sequence[Origin] | None = None,
    ) -> None:
        """One batch, with the collector paused (``self._gc``)."""
        count = len(events)
        with self._gc.paused():
            if events and self.keys is not None:
                events, origins, refused = self._refuse_suppressed(events, origins, self.keys)
                rejections = rejections + refused
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
                if self._writer is None:
                    self._route(events, entries, report)
                else:
                    self._settle()  # the batch before must land first: input order
                    self._appending = self._writer.submit(self._route, events, entries, report)
        self._gc.count(count)

    def _settle(self) -> None:
        """Wait for the batch in flight; its error is raised here."""
        pending, self._appending = self._appending, None
        if pending is not None:
            pending.result()

    def _route(self, events: list[Touchpoint], entries: list[Entry], report: PublishReport) -> None:
        """Append one encoded batch (keyed by person when routed) and count it."""
        if self.router is None:
            result = self.log.append(TOUCHPOINTS, entries)
        else:
            result = self.router.route(events, entries, self._append)
        report.accepted += result.accepted
        report.duplicates += len(result.duplicates)
        room = PublishReport.KEEP - len(report.duplicate_ids)
        report.duplicate_ids.extend(result.duplicates[: max(0, room)])

    def _append(self, entries: Sequence[Entry]) -> AppendResult:
        return self.log.append(TOUCHPOINTS, entries)

    @staticmethod
    def _refuse_suppressed(
        events: list[Touchpoint], origins: Sequence[Origin] | None, keys: KeyRing
    ) -> tuple[list[Touchpoint], Sequence[Origin] | None, list[Rejection]]:
        """Events of an erased person are refused, each with the reason; their
        text is not kept anywhere, not even in the dead-letter store."""
        suppressed = keys.suppressed({person_of(e) for e in events})
        if not suppressed:
            return events, origins, []
        kept: list[Touchpoint] = []
        kept_origins: list[Origin] = []
        refused: list[Rejection] = []
        for i, event in enumerate(events):
            if person_of(event) in suppressed:
                line_no = origins[i][0] if origins is not None else None
                reason = (
                    "the person was erased and is suppressed (engage privacy unsuppress "
                    "lifts it); the event is refused and its text not kept"
                )
                refused.append(Rejection(line_no, "customer_id", reason, "", event.event_id))
            else:
                kept.append(event)
                if origins is not None:
                    kept_origins.append(origins[i])
        return kept, (kept_origins if origins is not None else None), refused

    def _encode(
        self, events: list[Touchpoint], origins: Sequence[Origin] | None
    ) -> tuple[list[Touchpoint], list[bytes], list[Rejection]]:
        """Encode a batch; an event the codec refuses is rejected on its own
        (to the DLQ with the reason), never the batch around it. Personal
        fields are sealed first, so nothing personal reaches the log in clear."""
        plain = events
        if self.keys is not None:
            events = seal_events(events, self.keys, self._known)
        try:
            return plain, self.codec.encode_many(events), []
        except CodecError:
            pass
        kept: list[Touchpoint] = []
        payloads: list[bytes] = []
        failed: list[Rejection] = []
        for i, (event, sealed) in enumerate(zip(plain, events, strict=True)):
            try:
                payloads.extend(self.codec.encode_many([sealed]))
            except CodecError as exc:
                line_no, raw = origins[i] if origins is not None else (None, repr(event))
                text = raw if isinstance(raw, str) else dumps_any(raw)
                reason = f"cannot be stored: {exc}"
                failed.append(Rejection(line_no, "(event)", reason, text, event.event_id))
            else:
                kept.append(event)
        return kept, payloads, failed
