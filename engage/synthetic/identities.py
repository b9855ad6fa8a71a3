"""The identity mix of issue 13, derived from any synthetic history: 10% of
events carry an ``anonymous_id`` (one of two devices of their customer), and
1% of all events carry both ids, so they link the device to the customer;
the other 9% are anonymous only. Used by ``bench/identity.py``,
``bench/identity_pipeline.py`` and the identity tests.

The same draws give the mix as parsed touchpoints (``with_identities``) or as
JSON Lines in the ingest format (``with_identities_lines``), so a benchmark
can publish it the way ``engage publish`` does, parsing included."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence

import orjson

from events.model import Touchpoint


def _draws(
    count: int, seed: int, anonymous: float, linking: float
) -> Iterator[tuple[int, bool] | None]:
    """Per event: None (left as it is), or (its device number, whether the
    event keeps its customer id and so links the device to it)."""
    rng = random.Random(seed)
    for _ in range(count):
        draw = rng.random()
        if draw >= anonymous:
            yield None
        else:
            yield rng.randrange(2), draw < linking


def with_identities(
    events: list[Touchpoint], seed: int = 7, anonymous: float = 0.10, linking: float = 0.01
) -> list[Touchpoint]:
    """``anonymous`` of the events with a device id (two devices per
    customer), ``linking`` of them (of all events) with both ids."""
    out = []
    for event, drawn in zip(events, _draws(len(events), seed, anonymous, linking), strict=True):
        if drawn is None:
            out.append(event)
            continue
        number, links = drawn
        device = f"{event.customer_id}.dev{number}"
        if links:  # both ids: links the device to the customer
            out.append(dataclasses.replace(event, anonymous_id=device))
        else:  # anonymous only: the envelope keeps the device id as customer_id
            out.append(dataclasses.replace(event, customer_id=device, anonymous_id=device))
    return out


def with_identities_lines(
    lines: Sequence[str], seed: int = 7, anonymous: float = 0.10, linking: float = 0.01
) -> list[str]:
    """The same mix as ``with_identities`` on JSON Lines: an anonymous-only
    line names no ``customer_id`` at all, as an SDK sends it."""
    out = []
    for line, drawn in zip(lines, _draws(len(lines), seed, anonymous, linking), strict=True):
        if drawn is None:
            out.append(line)
            continue
        number, links = drawn
        event = orjson.loads(line)
        event["anonymous_id"] = f"{event['customer_id']}.dev{number}"
        if not links:
            del event["customer_id"]
        out.append(orjson.dumps(event).decode())
    return out
