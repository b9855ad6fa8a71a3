"""Reads by any identifier: a person's history across every key its events
were appended under.

The publish step appends an event under its person as it stood then
(``projections.identity_router``); after a merge the person's older events
stay under the keys of the persons it absorbed. ``PersonHistory`` is the
``CustomerHistory`` port for reads (``engage profile``, ``--as-of``, the
timeline, ``GET /v1/customers/{id}``): named by any identifier, it answers
with the records and triggers of every such key, once each, in log order.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from events.identity import EMAIL
from events.ports import ALL_TRIGGERS, CustomerHistory, LogRecord, TriggerQuery
from projections.identity import Person
from projections.identity_ports import IdentityReads


def history_keys(person: Person) -> set[str]:
    """The keys a person's events were appended under: its identifiers that
    key events (not emails) and the persons it absorbed."""
    return {
        person.person_id,
        *person.merged_from,
        *(i.value for i in person.identifiers if i.kind != EMAIL),
    }


def identity_fields(person: Person | None, person_id: str) -> dict[str, Any]:
    """What the customer-360 JSON gains: ``person_id``, ``identifiers`` and
    ``merged_from`` (a person never linked is its customer id alone)."""
    if person is None:
        return {
            "person_id": person_id,
            "identifiers": [{"kind": "customer_id", "value": person_id}],
            "merged_from": [],
        }
    return {
        "person_id": person.person_id,
        "identifiers": [{"kind": i.kind, "value": i.value} for i in person.identifiers],
        "merged_from": list(person.merged_from),
    }


class PersonHistory:
    def __init__(self, log: CustomerHistory, identity: IdentityReads) -> None:
        self.log = log
        self.identity = identity
        self.history_filters_by_time = log.history_filters_by_time

    def person_id(self, name: str) -> tuple[str, Person | None]:
        """The person id any identifier names (itself when it names no person)."""
        person = self.identity.find(name)
        return (name, None) if person is None else (person.person_id, person)

    def _keys(self, name: str) -> list[str]:
        person = self.identity.find(name)
        return [name] if person is None else sorted(history_keys(person))

    def customer_history(self, customer_id: str, until: int | None = None) -> list[LogRecord]:
        keys = self._keys(customer_id)
        if len(keys) == 1:
            return self.log.customer_history(keys[0], until)
        found = {
            (r.partition, r.offset): r for k in keys for r in self.log.customer_history(k, until)
        }
        return sorted(found.values(), key=lambda r: (r.partition, r.offset))

    def customer_histories(self, customer_ids: Collection[str]) -> dict[str, list[LogRecord]]:
        found = {c: self.customer_history(c) for c in customer_ids}
        return {c: records for c, records in found.items() if records}

    def find_triggers(self, query: TriggerQuery = ALL_TRIGGERS) -> list[LogRecord]:
        if query.customer_id is None:
            return self.log.find_triggers(query)
        keys = self._keys(query.customer_id)
        if len(keys) == 1:
            return self.log.find_triggers(replace(query, customer_id=keys[0]))
        found = {
            (r.partition, r.offset): r
            for k in keys
            for r in self.log.find_triggers(replace(query, customer_id=k))
        }
        return sorted(found.values(), key=lambda r: (r.partition, r.offset))
