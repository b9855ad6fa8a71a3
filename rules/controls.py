"""Delivery controls and their memory in ``profile.rule_state``.

The memory lives in the profile so it commits in the same transaction as the
profile, the offsets and the outbox: a crash can never leave a trigger sent
without the cooldown that should follow it, or the reverse.

Layout (JSON-ready; every value is replaced on change, never mutated, because
``Profile.copy`` copies ``rule_state`` shallowly and the caller keeps the
"before" profile):

* ``rule_state[rule_id] = {"n": fires, "last": fired_at, "keys": [once-keys],
  "spent": due}`` (``keys`` only for keyed rules, the newest ``MAX_KEYS`` kept;
  ``spent`` only for timers: the last due instant handled, fired or not, so a
  timer the cap held back is not armed again for the same instant);
* ``rule_state["~cap"] = [fired_at, ...]``: the customer's marketing fires of
  the last cap window, ascending. ``~`` cannot start a rule id.
"""

from __future__ import annotations

from typing import Any, Final

from events.model import Micros
from rules.model import FrequencyCap, Rule

CAP_KEY: Final = "~cap"
MAX_KEYS: Final = 256
"""Once-keys kept per rule and customer: bounds the profile; a key older than the
256 newest (a case closed again after 256 later cases) could fire again."""


def blocked(rule: Rule, state: dict[str, Any], at: Micros, cap: FrequencyCap | None) -> bool:
    """The controls that need no expression: once per customer, cooldown, and
    the cap unless ``cap`` is None (arming a timer ignores the cap, which other
    rules' fires can still change before the timer is due). Consent is the
    caller's: it reads the profile, not the memory."""
    entry: dict[str, Any] | None = state.get(rule.id)
    if entry is not None:
        once = rule.once_per
        if once is not None and once.kind == "customer" and entry.get("n", 0) > 0:
            return True
        last = entry.get("last")
        if rule.cooldown is not None and last is not None and abs(at - last) < rule.cooldown:
            return True
    return cap is not None and rule.marketing and capped(state.get(CAP_KEY), at, cap)


def capped(times: list[Micros] | None, at: Micros, cap: FrequencyCap) -> bool:
    """Would a marketing trigger at ``at`` put more than ``cap.count`` into some
    window of ``cap.window``? Exact for fires in any order, not just ascending."""
    if not times or len(times) < cap.count:
        return False  # fewer fires than the cap allows cannot exceed it anywhere
    near = sorted([t for t in times if abs(t - at) < cap.window] + [at])
    k = cap.count
    return any(near[i + k] - near[i] < cap.window for i in range(len(near) - k))


def key_used(rule: Rule, state: dict[str, Any], key: str) -> bool:
    entry: dict[str, Any] | None = state.get(rule.id)
    return entry is not None and key in entry.get("keys", ())


def record(
    rule: Rule, state: dict[str, Any], at: Micros, key: str | None, cap: FrequencyCap
) -> None:
    """Remember a fire: new values under the rule's and the cap's keys."""
    entry: dict[str, Any] = state.get(rule.id) or {}
    new: dict[str, Any] = {
        **entry,
        "n": entry.get("n", 0) + 1,
        "last": max(at, entry.get("last", at)),
    }
    keys: list[str] | None = entry.get("keys")
    if key is not None:
        keys = [*(keys or ()), key][-MAX_KEYS:]
    if keys is not None:
        new["keys"] = keys
    state[rule.id] = new
    if rule.marketing:
        times = sorted([*state.get(CAP_KEY, ()), at])
        horizon = times[-1] - cap.window
        state[CAP_KEY] = [t for t in times if t > horizon]


def spend(rule: Rule, state: dict[str, Any], due: Micros) -> None:
    """Mark a timer's due instant as handled, whatever the outcome."""
    entry: dict[str, Any] = state.get(rule.id) or {}
    state[rule.id] = {**entry, "spent": due}


def spent(rule: Rule, state: dict[str, Any], due: Micros) -> bool:
    entry: dict[str, Any] | None = state.get(rule.id)
    return entry is not None and entry.get("spent") == due
