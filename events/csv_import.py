"""Reading a CSV export row by row into validated touchpoints.

The publisher batches and stores what this yields, exactly as for JSON
Lines, so a CSV row gets the same validation, line numbers and dead-letter
store as ``engage publish``. A row is read with the ``csv`` module (quoted
fields may span lines); its line number is the physical line it starts on,
which is what a spreadsheet user looks for, and its raw text for the DLQ is
the row written back as one CSV line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from events.csv_mapping import CsvMapping, MappingError, map_row
from events.ingest import IngestError, Rejection, parse_object
from events.limits import TimeWindow
from events.publisher import Parsed


class _Counted:
    """Decodes lines and counts the bytes handed to the CSV reader (progress)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self.consumed = 0
        self.bad_line: int | None = None
        self.line_no = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed += len(line)
        self.line_no += 1
        try:
            return line.decode("utf-8-sig" if self.line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            self.bad_line = self.line_no
            return line.decode("utf-8", errors="backslashreplace")


def _raw(row: dict[str, str], header: list[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(
        [row.get(h, "") for h in header]
    )
    return out.getvalue()


def csv_items(
    lines: Iterable[bytes], mapping: CsvMapping, window: TimeWindow | None = None
) -> Iterator[Parsed]:
    """Validated touchpoints (or rejections) for every row of a CSV file.

    Raises ``MappingError`` before the first row when the header lacks a
    column the mapping uses."""
    counted = _Counted(lines)
    reader = csv.DictReader(counted, delimiter=mapping.delimiter)
    header = list(reader.fieldnames or [])
    if not header:
        raise MappingError("the CSV file is empty: it needs a header line")
    mapping.check_header(header)
    start = counted.line_no + 1
    for row in reader:
        size, counted.consumed = counted.consumed, 0
        line_no, start = start, counted.line_no + 1
        raw = _raw(row, header, mapping.delimiter)
        if counted.bad_line is not None:
            counted.bad_line = None
            yield line_no, Rejection(line_no, "(line)", "not valid UTF-8", raw), raw, size
            continue
        if None in row:  # more cells than the header has columns
            reason = f"has {len(header) + len(row[None])} cells; the header has {len(header)}"
            yield line_no, Rejection(line_no, "(line)", reason, raw), raw, size
            continue
        try:
            objects = map_row(mapping, row)
        except IngestError as exc:
            yield line_no, Rejection(line_no, exc.field, exc.reason, raw), raw, size
            continue
        if not objects:
            yield line_no, None, raw, size
        for obj, where in objects:
            item = parse_object(obj, line_no, raw, window, _from_columns(where))
            yield line_no, item, raw, size
            size = 0


def _from_columns(where: dict[str, str]) -> Any:
    def mapper(obj: object) -> tuple[object, Any]:
        return obj, lambda native: where.get(native, native)

    return mapper
