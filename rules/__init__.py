"""Lifecycle rules: YAML rules compiled once, evaluated purely against profiles.

The core never reads the clock and does no I/O beyond reading a rule file:
``evaluate`` judges one event, ``due_timers``/``fire_timer`` handle the rules
that fire on time passing, and ``rules.harness`` fixes the order in which the
processor (and any backtest) combines them with the fold.
"""

from rules.evaluate import RuleSet, due_timers, evaluate, fire_due, fire_timer
from rules.firing import trigger_id
from rules.harness import Harness, replay
from rules.loader import default_rules, default_rules_path, load_rules, load_rules_text
from rules.model import FrequencyCap, Rule, RuleError

__all__ = [
    "FrequencyCap",
    "Harness",
    "Rule",
    "RuleError",
    "RuleSet",
    "default_rules",
    "default_rules_path",
    "due_timers",
    "evaluate",
    "fire_due",
    "fire_timer",
    "load_rules",
    "load_rules_text",
    "replay",
    "trigger_id",
]
