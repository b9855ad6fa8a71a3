"""A ``Person`` as JSON and back: how the identity fold's state is kept one row
per person (a ``json`` column, as the profiles are) and loaded per batch.

Identifiers are ``[kind, value]`` pairs and evidence ``[event_id, at,
[identifiers]]``, so a row stays small and readable in ``psql``. Reading what
was written gives an equal ``Person`` (``tests/unit/test_identity_properties.py``
folds through it).
"""

from __future__ import annotations

from typing import Any

from events.identity import Evidence, Identifier
from events.timefmt import format_iso
from projections.identity import Conflict, Link, Person

JsonObject = dict[str, Any]


def _ident(identifier: Identifier) -> list[str]:
    return [identifier.kind, identifier.value]


def _evidence(evidence: Evidence) -> list[Any]:
    return [evidence.event_id, evidence.at, [_ident(i) for i in evidence.identifiers]]


def _conflict(conflict: Conflict) -> JsonObject:
    return {
        "evidence": _evidence(conflict.evidence),
        "identifier": _ident(conflict.identifier),
        "reason": conflict.reason,
    }


def person_to_json(person: Person) -> JsonObject:
    return {
        "key": _ident(person.key),
        "links": [[*_ident(x.identifier), x.evidence, x.at, x.first_seen] for x in person.links],
        "conflicts": [
            {
                "evidence": _evidence(c.evidence),
                "identifier": _ident(c.identifier),
                "reason": c.reason,
            }
            for c in person.conflicts
        ],
        "merged_from": list(person.merged_from),
        "evidence": [_evidence(e) for e in person.evidence],
        "apart": [[_ident(a), _ident(b)] for a, b in person.apart],
    }


def _read_ident(raw: list[str]) -> Identifier:
    kind, value = raw
    return Identifier(kind, value)


def _read_evidence(raw: list[Any]) -> Evidence:
    event_id, at, identifiers = raw
    return Evidence(event_id, at, tuple(_read_ident(i) for i in identifiers))


def person_from_json(raw: JsonObject) -> Person:
    return Person(
        key=_read_ident(raw["key"]),
        links=tuple(
            Link(Identifier(kind, value), evidence, at, first_seen)
            for kind, value, evidence, at, first_seen in raw["links"]
        ),
        conflicts=tuple(
            Conflict(_read_evidence(c["evidence"]), _read_ident(c["identifier"]), c["reason"])
            for c in raw["conflicts"]
        ),
        merged_from=tuple(raw["merged_from"]),
        evidence=tuple(_read_evidence(e) for e in raw["evidence"]),
        apart=tuple((_read_ident(a), _read_ident(b)) for a, b in raw["apart"]),
    )


def person_json(person: Person) -> dict[str, Any]:
    """A person as ``engage identity ID --json`` and ``GET /v1/identity/{id}`` show it."""
    return {
        "person_id": person.person_id,
        "identifiers": [
            {
                "kind": link.identifier.kind,
                "value": link.identifier.value,
                "evidence": link.evidence,
                "linked_at": format_iso(link.at),
                "first_seen": format_iso(link.first_seen),
            }
            for link in person.links
        ],
        "conflicts": [
            {
                "identifier": {"kind": c.identifier.kind, "value": c.identifier.value},
                "evidence": c.evidence.event_id,
                "at": format_iso(c.evidence.at),
                "reason": c.reason,
            }
            for c in person.conflicts
        ],
        "merged_from": list(person.merged_from),
    }
