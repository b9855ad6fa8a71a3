"""A value the Avro encoder refuses costs its own event, not the batch (issue 11,
defect 3: items nested ~1,000 deep failed encoding, and HTTP answered 503 for
the whole batch). Validation now stops such values first; this is the codec's
own refusal, reached through the publisher's API with a Touchpoint built in
code (as Python callers and the Kafka tests do)."""

from __future__ import annotations

from dataclasses import replace

from engage.runtime import Engine
from events.ingest import validate
from tests.helpers import event


def test_an_event_the_codec_refuses_is_dead_lettered_alone(engine: Engine) -> None:
    good = validate(event("ok", "ann", "purchase", "2026-03-01T10:00:00Z", order_id="o", amount=1))
    bad = replace(good, event_id="nan", properties={**good.properties, "items": [float("nan")]})
    also = replace(good, event_id="ok2")
    report = engine.publisher().publish_events(
        [good, bad, also], [], "code", [(1, "line one"), (2, {"raw": "two"}), (3, "line three")]
    )
    assert (report.accepted, report.duplicates, report.rejected) == (2, 0, 1)
    (rejection,) = report.rejections
    assert (rejection.line_no, rejection.event_id, rejection.field) == (2, "nan", "(event)")
    assert "cannot be stored" in rejection.reason
    (letter,) = engine.dead_letters.list()
    assert (letter.line_no, letter.event_id, letter.raw) == (2, "nan", '{"raw":"two"}')
