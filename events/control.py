"""Control records: what the touchpoints log holds besides touchpoints.

Four kinds, each with its own Avro schema and so its own fingerprint, told
apart from touchpoints by the first ten bytes without decoding:

- clock records (``events.clock``): advances of a partition's clock;
- ``model_fitted`` records: a fitted churn and lifetime-value model
  (``engage model fit``), one copy per partition, so the processor and every
  replay adopt the parameters at the same log position;
- ``subject_erased`` records (``events.subject_erased``): a person's erasure;
- identity records (``events.identity``, ``events.codec.identity``):
  ``identity_linked`` and ``identity_unlinked``, keyed by person. Nothing
  writes them yet (docs/identity.md); ``without_control`` already drops them,
  and ``is_control`` does not name them, so the processor treats one as it
  treats any record it cannot decode until it is taught to fold them.

The processor decodes and applies them (``consumers.pipeline``); every other
reader of touchpoints skips them (``without_control``), and a reader that
just decodes everything gets a ``CodecError`` for them from the touchpoint
codec, which it already skips.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from events.clock import clock_codec, key_for
from events.codec import HEADER_SIZE, DataclassCodec
from events.codec.identity import linked_codec, unlinked_codec
from events.identity import IdentityLinked, IdentityUnlinked
from events.log import Entry, LogRecord
from events.model import Micros, ModelFitted
from events.subject_erased import erased_codec

MODEL_SCHEMA: Final = "engage.ModelFitted"
MODEL_TYPE: Final = "~model"
"""The ``type`` column a model_fitted record has on the PostgreSQL log."""
MODEL_PARAMS: Final = ("r", "alpha", "a", "b", "p", "q", "gamma")
SOURCE: Final = "engage model fit"
IDENTITY_TYPE: Final = "~identity"
"""The ``type`` column an identity record has on the PostgreSQL log."""


class ModelFittedCodec(DataclassCodec[ModelFitted]):
    """The parameters travel as one double field each; ``source`` names the writer."""

    _schema_name = MODEL_SCHEMA
    _first_field = "source"
    _type = ModelFitted
    _fields = ("version", "partition", "partitions", "as_of", "time_unit", "fitted_at")

    def _key(self, value: ModelFitted) -> str:
        return f"model {value.version} on partition {value.partition}"

    def _to_record(self, value: ModelFitted) -> dict[str, Any]:
        params = {name: float(value.params[name]) for name in MODEL_PARAMS}
        return {"source": SOURCE, **super()._to_record(value), **params}

    def _from_record(self, record: dict[str, Any]) -> ModelFitted:
        params = {name: record[name] for name in MODEL_PARAMS}
        return self._type(params=params, **{name: record[name] for name in self._fields})


@cache
def model_codec() -> ModelFittedCodec:
    return ModelFittedCodec()


@cache
def _headers() -> tuple[bytes, bytes, bytes]:
    return clock_codec()._header, model_codec()._header, erased_codec()._header


def is_model_fitted(payload: bytes) -> bool:
    return payload[:HEADER_SIZE] == _headers()[1]


def is_control(payload: bytes) -> bool:
    """True for a clock, model_fitted or subject_erased record's payload,
    without decoding."""
    return payload[:HEADER_SIZE] in _headers()


@cache
def _identity_headers() -> tuple[bytes, bytes]:
    return linked_codec()._header, unlinked_codec()._header


def is_identity(payload: bytes) -> bool:
    """True for an identity_linked or identity_unlinked payload, without decoding."""
    return payload[:HEADER_SIZE] in _identity_headers()


def is_linked(payload: bytes) -> bool:
    """True for an identity_linked payload (else, of the two, an unlink)."""
    return payload[:HEADER_SIZE] == _identity_headers()[0]


@cache
def not_touchpoint_headers() -> frozenset[bytes]:
    """The headers of every record on the touchpoints log that is not a
    touchpoint (clock, model_fitted, subject_erased, identity): one set
    look-up per record tells the processor which to decode apart."""
    return frozenset(_headers() + _identity_headers())


def without_control(records: Sequence[LogRecord]) -> list[LogRecord]:
    """The touchpoints among ``records``: what every reader but the processor wants."""
    heads = _headers() + _identity_headers()
    return [r for r in records if r.payload[:HEADER_SIZE] not in heads]


def identity_entry(record: IdentityLinked | IdentityUnlinked) -> Entry:
    """A log entry for an identity record, keyed by its person. Its id names
    the person, the identifier and the evidence (or the instant of the
    unlink), so writing the same decision twice is a duplicate."""
    name = f"{record.person_id}/{record.kind}:{record.value}"
    if isinstance(record, IdentityLinked):
        record_id, payload = f"~linked/{name}/{record.evidence}", linked_codec().encode(record)
    else:
        record_id, payload = f"~unlinked/{name}/{record.at}", unlinked_codec().encode(record)
    return Entry(record_id, record.person_id, payload, record.at, IDENTITY_TYPE)


def model_entries(
    version: int,
    params: dict[str, float],
    as_of: Micros,
    partitions: int,
    fitted_at: str = "",
    time_unit: str = "days",
) -> list[Entry]:
    """One ``model_fitted`` entry per partition. Each id names the version and
    the partition, so appending the same fit twice is a duplicate."""
    codec = model_codec()
    return [
        Entry(
            f"~model/{version}/{partition}",
            key_for("~model", partition, partitions),
            codec.encode(
                ModelFitted(version, partition, partitions, as_of, params, time_unit, fitted_at)
            ),
            as_of,
            MODEL_TYPE,
        )
        for partition in range(partitions)
    ]
