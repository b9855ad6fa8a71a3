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
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from events.model import Touchpoint

T = TypeVar("T")


def _mix(
    items: Sequence[T],
    seed: int,
    anonymous: float,
    linking: float,
    with_device: Callable[[T, int, bool], T],
) -> list[T]:
    """The draws both forms share: ``anonymous`` of the items get
    ``with_device(item, device number, links)``, where ``links`` (``linking``
    of all items) says the item keeps its customer id beside the device id."""
    rng = random.Random(seed)
    out = []
    for item in items:
        draw = rng.random()
        if draw >= anonymous:
            out.append(item)
        else:
            out.append(with_device(item, rng.randrange(2), draw < linking))
    return out


def with_identities(
    events: list[Touchpoint], seed: int = 7, anonymous: float = 0.10, linking: float = 0.01
) -> list[Touchpoint]:
    """``anonymous`` of the events with a device id (two devices per
    customer), ``linking`` of them (of all events) with both ids."""
    return _mix(events, seed, anonymous, linking, _touchpoint_with_device)


def _touchpoint_with_device(event: Touchpoint, number: int, links: bool) -> Touchpoint:
    device = f"{event.customer_id}.dev{number}"
    if links:  # both ids: links the device to the customer
        return dataclasses.replace(event, anonymous_id=device)
    # anonymous only: the envelope keeps the device id as customer_id
    return dataclasses.replace(event, customer_id=device, anonymous_id=device)


def with_identities_lines(
    lines: Sequence[str], seed: int = 7, anonymous: float = 0.10, linking: float = 0.01
) -> list[str]:
    """The same mix as ``with_identities`` on JSON Lines: an anonymous-only
    line names no ``customer_id`` at all, as an SDK sends it."""
    return _mix(lines, seed, anonymous, linking, _line_with_device)


def _line_with_device(line: str, number: int, links: bool) -> str:
    event = orjson.loads(line)
    event["anonymous_id"] = f"{event['customer_id']}.dev{number}"
    if not links:
        del event["customer_id"]
    return orjson.dumps(event).decode()
