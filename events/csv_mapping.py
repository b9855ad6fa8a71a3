"""CSV exports -> touchpoints: the mapping file (YAML) and how a row is mapped.

Marketing already has exports from its CRM and CEM tools (orders, contacts,
support cases, survey responses). A mapping names, per touchpoint a row
yields, which columns fill which field; the result is a native JSON object,
validated by the one validator like every other shape. The mapping itself is
checked up front with pydantic, so a typo in it is one clear error naming
its place in the file, before a single row is read. The reference with
examples is docs/ingest.md; shipped examples are in ``events/mappings/``.

Pure apart from reading the mapping file: rows come in as dicts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from events.csv_shipped import SHIPPED
from events.errors import EngageError
from events.ingest import IngestError

_PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
_TRUE: Final = frozenset({"true", "yes", "y", "1", "t"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "f"})


class MappingError(EngageError):
    """The mapping file itself is wrong (or does not fit the CSV's header)."""


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
    return value


Zone = Annotated[str, AfterValidator(_zone)]


class Column(BaseModel):
    """One field's value: a column (or a template of columns), converted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    column: str | None = None
    template: str | None = None
    as_: Literal["string", "number", "integer", "boolean"] = Field("string", alias="as")
    format: str | None = None
    """strptime format for a time column, when it is not ISO 8601."""
    timezone: Zone | None = None
    """IANA zone for times written without one (most CRM exports)."""
    map: dict[str, Any] | None = None
    """Replaces a cell's value (a status 'Closed' -> a type); others are refused."""
    default: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> Column:
        if (self.column is None) == (self.template is None):
            raise ValueError("give exactly one of column or template")
        return self

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        assert self.template is not None
        return _PLACEHOLDER.findall(self.template)


Value = Annotated[str | int | float | bool | Column, Field(union_mode="left_to_right")]
"""A literal, a template string with {Column} placeholders, or a Column."""


class EventMapping(BaseModel):
    """The touchpoint one row yields (a row may yield several)."""

    model_config = ConfigDict(extra="forbid")

    type: str | Column
    event_id: Value
    customer_id: Value | None = None
    anonymous_id: Value | None = None
    occurred_at: Value
    channel: Value | None = None
    source: Value | None = None
    properties: dict[str, Value] = Field(default_factory=dict)
    only_if: str | None = None
    """A column that must be non-empty for this touchpoint (a case's
    'Closed Date' for its closed event)."""

    def columns(self) -> set[str]:
        used: set[str] = set()
        for value in (
            self.type,
            self.event_id,
            self.customer_id,
            self.anonymous_id,
            self.occurred_at,
            self.channel,
            self.source,
            *self.properties.values(),
        ):
            used.update(_columns(value))
        if self.only_if is not None:
            used.add(self.only_if)
        return used


class CsvMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    timezone: Zone = "UTC"
    """The zone of times written without one, unless a field says otherwise."""
    events: list[EventMapping] = Field(min_length=1)

    def columns(self) -> set[str]:
        return set().union(*(e.columns() for e in self.events))

    def check_header(self, header: list[str]) -> None:
        missing = sorted(self.columns() - set(header))
        if missing:
            raise MappingError(
                f"the mapping uses column(s) {', '.join(map(repr, missing))} that the CSV header "
                f"does not have; the header has {', '.join(map(repr, header))}"
            )


def _columns(value: object) -> list[str]:
    if isinstance(value, Column):
        return value.columns()
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    return []


def _branch(part: object) -> bool:
    """Whether an error location's part names one alternative of a field
    (pydantic's ``str``, ``function-after[..., Column]``), not a place in the file."""
    return part in ("str", "int", "float", "bool") or "Column" in str(part)


def load_mapping(spec: str) -> CsvMapping:
    """A mapping from a YAML file, or a shipped one by name."""
    path = Path(spec)
    if spec in SHIPPED and not path.exists():
        text = (files("events") / "mappings" / f"{spec}.yaml").read_text()
        where = f"{spec} (shipped)"
    else:
        if not path.is_file():
            names = ", ".join(SHIPPED)
            raise MappingError(f"no such mapping file: {spec} (shipped mappings: {names})")
        text = path.read_text()
        where = spec
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{where}: not valid YAML: {exc}") from None
    try:
        return CsvMapping.model_validate(data)
    except ValidationError as exc:
        found = exc.errors()
        # a field may be a literal or a column spec: the spec's error says what is wrong
        first = next((e for e in found if any("Column" in str(p) for p in e["loc"])), found[0])
        loc = ".".join(str(p) for p in first["loc"] if not _branch(p)) or "(mapping)"
        others = [e for e in found if e is not first and not any(_branch(p) for p in e["loc"])]
        more = f" (and {len(others)} more)" if others else ""
        raise MappingError(f"{where}: {loc}: {first['msg']}{more}") from None


def map_row(
    mapping: CsvMapping, row: dict[str, str]
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The native objects one row yields, each with the column each field came
    from (for error messages). Raises ``IngestError`` for a cell that cannot
    be converted."""
    out = []
    for event in mapping.events:
        if event.only_if is not None and not (row.get(event.only_if) or "").strip():
            continue
        obj: dict[str, Any] = {}
        where: dict[str, str] = {}
        fields: list[tuple[str, object]] = [
            ("type", event.type),
            ("event_id", event.event_id),
            ("customer_id", event.customer_id),
            ("anonymous_id", event.anonymous_id),
            ("channel", event.channel),
            ("source", event.source),
        ]
        for name, spec in fields:
            _put(obj, where, name, spec, row, None)
        _put(obj, where, "occurred_at", event.occurred_at, row, mapping.timezone)
        props: dict[str, Any] = {}
        for name, spec in event.properties.items():
            _put(props, where, name, spec, row, None, prefix="properties.")
        obj["properties"] = props
        out.append((obj, where))
    return out


def _put(
    target: dict[str, Any],
    where: dict[str, str],
    name: str,
    spec: object,
    row: dict[str, str],
    zone: str | None,
    prefix: str = "",
) -> None:
    if spec is None:
        return
    field = prefix + name
    cols = _columns(spec)
    if cols:
        where[field] = f"{field} (column {', '.join(map(repr, cols))})"
    value = _value(spec, row, field, zone, where.get(field, field))
    if value is not None:
        target[name] = value


def _value(spec: object, row: dict[str, str], field: str, zone: str | None, label: str) -> Any:
    column = spec if isinstance(spec, Column) else None
    if column is None:
        if not isinstance(spec, str):
            return spec  # a literal number or boolean
        text = (_fill(spec, row) or "").strip()
    elif column.column is not None:
        text = (row.get(column.column) or "").strip()
    else:
        text = (_fill(column.template or "", row) or "").strip()
    if not text:
        return column.default if column is not None else None
    if column is not None and column.map is not None:
        if text not in column.map:
            known = ", ".join(map(repr, column.map))
            raise IngestError(label, f"{text!r} is not in the mapping's map ({known})")
        return column.map[text]
    if field == "occurred_at":
        return _time(text, column, zone or "UTC", label)
    return _convert(text, column.as_ if column is not None else "string", label)


def _fill(template: str, row: dict[str, str]) -> str | None:
    """A template with every placeholder filled; None when any cell is empty,
    so a missing id is reported as missing rather than stored as 'order-'."""
    empty = False

    def cell(match: re.Match[str]) -> str:
        nonlocal empty
        value = (row.get(match.group(1)) or "").strip()
        empty = empty or not value
        return value

    filled = _PLACEHOLDER.sub(cell, template)
    return None if empty else filled


def _convert(text: str, kind: str, label: str) -> Any:
    if kind == "string":
        return text
    if kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise IngestError(label, f"{text!r} is not a yes/no value")
    try:
        number = float(text.replace(" ", ""))
    except ValueError:
        raise IngestError(label, f"{text!r} is not a number") from None
    if kind == "integer":
        if not number.is_integer():
            raise IngestError(label, f"{text!r} is not a whole number")
        return int(number)
    return number


def _time(text: str, column: Column | None, zone: str, label: str) -> str:
    """ISO 8601 UTC for a cell, read with the field's format and zone."""
    fmt = column.format if column is not None else None
    try:
        value = datetime.strptime(text, fmt) if fmt is not None else datetime.fromisoformat(text)
    except ValueError:
        hint = f"format {fmt!r}" if fmt else "ISO 8601"
        raise IngestError(label, f"{text!r} is not a time in {hint}") from None
    if value.tzinfo is None:
        given = column.timezone if column is not None else None
        value = value.replace(tzinfo=ZoneInfo(given or zone))
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
