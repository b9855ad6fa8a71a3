"""The identity mix of issue 13, derived from any synthetic history: 10% of
events carry an ``anonymous_id`` (one of two devices of their customer), and
1% of all events carry both ids, so they link the device to the customer;
the other 9% are anonymous only. Used by ``bench/identity.py``,
``bench/identity_pipeline.py`` and the identity tests."""

from __future__ import annotations

import dataclasses
import random

from events.model import Touchpoint


def with_identities(
    events: list[Touchpoint], seed: int = 7, anonymous: float = 0.10, linking: float = 0.01
) -> list[Touchpoint]:
    """``anonymous`` of the events with a device id (two devices per
    customer), ``linking`` of them (of all events) with both ids."""
    rng = random.Random(seed)
    out = []
    for event in events:
        draw = rng.random()
        if draw >= anonymous:
            out.append(event)
            continue
        device = f"{event.customer_id}.dev{rng.randrange(2)}"
        if draw < linking:  # both ids: links the device to the customer
            out.append(dataclasses.replace(event, anonymous_id=device))
        else:  # anonymous only: the envelope keeps the device id as customer_id
            out.append(dataclasses.replace(event, customer_id=device, anonymous_id=device))
    return out
