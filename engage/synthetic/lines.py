"""The history as JSON Lines, with the bad input a real upstream system produces."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

import orjson

from engage.synthetic.simulation import generate
from engage.synthetic.spec import HistorySpec, check, estimate_events
from events.timefmt import format_iso

BAD_KINDS: Final = (
    "not_json",
    "missing_field",
    "unknown_type",
    "bad_timestamp",
    "no_zone",
    "negative_amount",
    "amount_as_string",
    "score_out_of_range",
    "missing_property",
    "unknown_channel",
    "empty_id",
    "id_too_long",
    "properties_not_object",
    "not_an_object",
    "unknown_survey",
    "amount_as_bool",
)
"""Every rejection kind ``generate_lines`` mixes in, cycled in this order."""

REQUIRED_FIELDS: Final = ("customer_id", "event_id", "type", "occurred_at")


def bad_line(kind_index: int, number: int, template: dict[str, Any]) -> str:
    """One deliberately bad line of kind ``BAD_KINDS[kind_index % len]``.

    ``template`` is a good event whose customer and time the bad line borrows,
    so it looks like a real upstream mistake. Ids are ``bad-<number>``.
    """
    kind = BAD_KINDS[kind_index % len(BAD_KINDS)]
    round_ = kind_index // len(BAD_KINDS)
    ev: dict[str, Any] = {
        "event_id": f"bad-{number}",
        "customer_id": template["customer_id"],
        "type": "purchase",
        "occurred_at": template["occurred_at"],
        "channel": "web",
        "source": "shop",
        "properties": {"order_id": f"bad-o-{number}", "amount": 19.99, "currency": "USD"},
    }
    props = ev["properties"]
    if kind == "not_json":
        return orjson.dumps(ev).decode()[: 40 + round_ % 20] + "\n"
    if kind == "missing_field":
        del ev[REQUIRED_FIELDS[round_ % len(REQUIRED_FIELDS)]]
    elif kind == "unknown_type":
        ev["type"] = "page_viewd"
    elif kind == "bad_timestamp":
        ev["occurred_at"] = ("2026-13-45T25:61:00Z", "yesterday", "1767225600")[round_ % 3]
    elif kind == "no_zone":
        ev["occurred_at"] = template["occurred_at"].rstrip("Z")
    elif kind == "negative_amount":
        props["amount"] = -19.99
    elif kind == "amount_as_string":
        props["amount"] = "19.99"
    elif kind == "score_out_of_range":
        ev["type"] = "survey_response"
        survey, score = (("nps", 11), ("csat", 0), ("nps", -1), ("csat", 6))[round_ % 4]
        ev["properties"] = {"survey": survey, "score": score}
    elif kind == "missing_property":
        del props["order_id"]
    elif kind == "unknown_channel":
        ev["channel"] = "fax"
    elif kind == "empty_id":
        ev["event_id"] = ""
    elif kind == "id_too_long":
        ev["event_id"] = "bad-" + "x" * 125 + str(number)
    elif kind == "properties_not_object":
        ev["properties"] = ["order_id", "amount"]
    elif kind == "not_an_object":
        return orjson.dumps([ev]).decode() + "\n"
    elif kind == "unknown_survey":
        ev["type"] = "survey_response"
        ev["properties"] = {"survey": "ces", "score": 3}
    elif kind == "amount_as_bool":
        props["amount"] = True
    return orjson.dumps(ev).decode() + "\n"


def generate_lines(spec: HistorySpec) -> Iterator[str]:
    """The history as JSON Lines, each line ending in ``\\n``.

    With ``bad_lines`` set, that many bad lines are spread evenly through the
    output (any left over when the history ends come last), cycling through
    ``BAD_KINDS``. With ``duplicate_rate`` set, after each good line a
    recently sent line is re-sent verbatim with that probability, as a
    retrying upstream would. Both draw from their own generator, so the good
    lines are the same whatever the settings.
    """
    check(spec)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    if spec.bad_lines == 0 and spec.duplicate_rate == 0.0:
        for ev in generate(spec):
            yield dumps(ev, option=newline).decode()
        return
    rng = random.Random(f"engage-lines-{spec.seed}")
    every = max(1, estimate_events(spec) // (spec.bad_lines + 1))
    recent: deque[str] = deque(maxlen=1000)
    rate = spec.duplicate_rate
    bad = 0
    template: dict[str, Any] = {"customer_id": "c-000001", "occurred_at": format_iso(spec.start)}
    for n, ev in enumerate(generate(spec), start=1):
        line = dumps(ev, option=newline).decode()
        yield line
        recent.append(line)
        template = ev
        if rate and rng.random() < rate:
            yield recent[int(rng.random() * len(recent))]
        if bad < spec.bad_lines and n % every == 0:
            bad += 1
            yield bad_line(bad - 1, bad, ev)
    while bad < spec.bad_lines:
        bad += 1
        yield bad_line(bad - 1, bad, template)
