"""Sealing personal fields (``events.sealing``) and forgetting an erased
person in the pipeline, on the in-memory adapters: no database, so
Hypothesis can try many events."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.pipeline import Pipeline
from consumers.processor import Processor
from events.adapters.memory import MemoryDeadLetters, MemoryLog
from events.adapters.memory_keys import MemoryKeyRing
from events.codec import TouchpointCodec
from events.model import SubjectErased, Touchpoint
from events.publisher import Publisher
from events.sealing import PERSONAL, SEALED, personal_part, seal_events, unseal_events
from events.subject_erased import erased_entry
from events.timefmt import parse_iso
from projections.adapters.memory import MemoryProjectionStore
from rules import default_rules, load_rules
from rules.personal import opened_types
from tests.helpers import event, lines
from tests.unit.strategies import touchpoints

CODEC = TouchpointCodec()


def _readable(e: Touchpoint) -> Touchpoint:
    """What stays readable of an event: everything but its personal values."""
    props = {k: v for k, v in e.properties.items() if k not in PERSONAL.get(e.type, ())}
    if e.type == "web_visit":
        props["url"] = ""
    return replace(e, properties=props, extra={})


@settings(max_examples=200, deadline=None)
@given(st.lists(touchpoints(), min_size=1, max_size=8, unique_by=lambda e: e.event_id))
def test_sealed_events_encode_open_again_and_shred_with_the_key(events: list[Touchpoint]) -> None:
    keys = MemoryKeyRing()
    sealed = seal_events(events, keys)
    decoded = CODEC.decode_many(CODEC.encode_many(sealed))
    assert all(isinstance(d, Touchpoint) for d in decoded)
    opened = unseal_events([d for d in decoded if isinstance(d, Touchpoint)], keys)
    assert opened == events
    for before, after in zip(events, sealed, strict=True):
        part = personal_part(before)
        assert (SEALED in after.extra) == (part is not None)
        assert after.occurred_at == before.occurred_at and after.type == before.type
        if before.type in ("purchase", "refund"):
            assert after.properties["amount"] == before.properties["amount"]
    for person in {e.customer_id for e in events}:
        keys.destroy(person)
    shredded = unseal_events(sealed, keys)
    assert shredded == [_readable(e) for e in events]


def test_a_sealed_value_moved_onto_another_event_does_not_open() -> None:
    keys = MemoryKeyRing()
    a = Touchpoint(
        "e1",
        "ada",
        "survey_response",
        1,
        "survey",
        None,
        {"survey": "nps", "score": 3, "comment": "secret"},
    )
    b = Touchpoint("e2", "ada", "survey_response", 2, "survey", None, {"survey": "nps", "score": 9})
    sealed_a = seal_events([a], keys)[0]
    forged = replace(b, extra=dict(sealed_a.extra))
    assert unseal_events([forged], keys)[0] == b


NOW = parse_iso("2026-06-01T00:00:00Z")


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_the_pipeline_opens_sealed_fields_and_forgets_an_erased_person(batch_size: int) -> None:
    log = MemoryLog(4)
    keys = MemoryKeyRing()
    publisher = Publisher(log, MemoryDeadLetters(), CODEC, keys=keys)
    history = [
        event("a1", "ada", "identify", "2026-03-01T10:00:00Z", email="ada@x.org", name="Ada"),
        event("a2", "ada", "purchase", "2026-03-01T10:01:00Z", order_id="o1", amount=10),
        event("b1", "bob", "purchase", "2026-03-01T10:02:00Z", order_id="o2", amount=20),
    ]
    assert publisher.publish_lines(lines(*history), "t").accepted == 3
    assert b"ada@x.org" not in b"".join(
        r.payload for p in range(4) for r in log.read("touchpoints", {p: 0}, 100)
    )
    store = MemoryProjectionStore(log)
    pipeline = Pipeline(CODEC, rules=default_rules(), keys=keys, publish_to=4)
    Processor(log, store, pipeline, batch_size).run(until_idle=True, now=NOW)
    ada = store.get("ada")
    assert ada is not None and ada.identity["email"] == "ada@x.org"

    keys.destroy("ada")
    keys.suppress("ada")
    log.append("touchpoints", [erased_entry(SubjectErased("x1", "ada", NOW))])
    refused = publisher.publish_lines(
        lines(event("a3", "ada", "purchase", "2026-03-02T10:00:00Z", order_id="o3", amount=5)),
        "t",
    )
    assert refused.accepted == 0 and "erased" in refused.rejections[0].reason
    keys.unsuppress("ada")
    later = event("a4", "ada", "purchase", "2026-03-03T10:00:00Z", order_id="o4", amount=7)
    assert publisher.publish_lines(lines(later), "t").accepted == 1
    Processor(log, store, pipeline, batch_size).run(until_idle=True, now=NOW)

    fresh = store.get("ada")
    assert fresh is not None, "an event after the erasure starts a fresh profile"
    assert fresh.event_count == 1 and fresh.identity == {} and fresh.purchase_total == 7
    assert store.get("bob") is not None


@pytest.mark.parametrize(
    ("condition", "opened"),
    [
        ("event.type == 'purchase' && event.channel == 'web'", False),
        ("has(event.properties.url) && event.properties.url.contains('p')", True),
        ("'url' in event.properties && event.properties['url'] != ''", True),
        ("event.extra.size() > 0", True),
        ("event.properties.exists(k, k == 'url')", True),
        ("size(event.properties) > 1", True),
        ("after.order_count >= 1", False),
    ],
)
def test_the_pipeline_opens_the_types_whose_rules_may_read_personal_fields(
    condition: str, opened: bool, tmp_path: Path
) -> None:
    assert opened_types(default_rules()) == {"identify"}, "the default pack reads none"
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- id: r\n  version: 1\n  kind: k\n  audience: marketing\n  on: event\n"
        f'  types: [web_visit, purchase]\n  when: "{condition}"\n'
    )
    expected = {"identify", "web_visit", "purchase"} if opened else {"identify"}
    assert opened_types(load_rules(path)) == expected
