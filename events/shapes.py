"""The event shapes Engage accepts, and one entry point that validates any of them.

Native, Segment and CloudEvents objects all end in the same validator
(``events.ingest.validate``): a shape is only a mapper to the native format.
The Kafka ingest topic takes all three on one topic, so ``auto`` tells them
apart by fields that only one shape has (``specversion``; Segment's
camelCase ids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from events.cloudevents import from_cloudevent, looks_like_cloudevent
from events.ingest import Mapper, Rejection, parse_object
from events.limits import TimeWindow
from events.model import Touchpoint
from events.segment import from_segment, looks_like_segment

Shape = Literal["native", "segment", "cloudevents", "auto"]
SHAPES: Final = ("native", "segment", "cloudevents", "auto")


def _renamer(renames: dict[str, str]) -> Callable[[str], str]:
    return lambda native: renames.get(native, native)


def segment_mapper(kind: str | None = None, received_at: str | None = None) -> Mapper:
    def mapper(obj: object) -> tuple[object, Callable[[str], str]]:
        mapped = from_segment(obj, kind, received_at)
        return mapped.obj, _renamer(mapped.renames)

    return mapper


def cloudevents_mapper(obj: object) -> tuple[object, Callable[[str], str]]:
    native, renames = from_cloudevent(obj)
    return native, _renamer(renames)


def shape_of(obj: object) -> Shape:
    """Which shape a decoded object is in (native when nothing else fits)."""
    if isinstance(obj, dict):
        if looks_like_cloudevent(obj):
            return "cloudevents"
        if looks_like_segment(obj):
            return "segment"
    return "native"


def mapper_for(shape: Shape, obj: object, received_at: str | None = None) -> Mapper | None:
    if shape == "auto":
        shape = shape_of(obj)
    if shape == "segment":
        return segment_mapper(None, received_at)
    if shape == "cloudevents":
        return cloudevents_mapper
    return None


def parse_shaped(
    obj: object,
    line_no: int | None,
    shape: Shape,
    raw: str | None = None,
    window: TimeWindow | None = None,
    received_at: str | None = None,
) -> Touchpoint | Rejection:
    """Validate one decoded object of ``shape``; never raises for bad input."""
    return parse_object(obj, line_no, raw, window, mapper_for(shape, obj, received_at))
