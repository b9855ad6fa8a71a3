"""The union of two rule memories (``rules.controls``' layout), for a person
re-derived by a merge: what either side was sent, or would have been sent,
counts for the person.

- a rule's fire count and last fire: the larger; its once-keys: both sides',
  the newest ``MAX_KEYS`` kept; a timer's ``spent`` instant: the later;
- the frequency cap window: both sides' fires, in order.
"""

from __future__ import annotations

from typing import Any

from rules.controls import CAP_KEY, MAX_KEYS


def union_memory(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for rule_id, theirs in b.items():
        mine = out.get(rule_id)
        if mine is None:
            out[rule_id] = theirs
        elif rule_id == CAP_KEY:
            out[rule_id] = sorted({*mine, *theirs})
        else:
            out[rule_id] = _entry(mine, theirs)
    return out


def _entry(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = {**a, **b}
    for name in ("n", "last", "spent"):
        values = [v for v in (a.get(name), b.get(name)) if v is not None]
        if values:
            merged[name] = max(values)
    if "keys" in a or "keys" in b:
        keys = list(dict.fromkeys([*a.get("keys", []), *b.get("keys", [])]))
        merged["keys"] = keys[-MAX_KEYS:]
    return merged
