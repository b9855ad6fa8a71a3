"""Rule conditions in CEL, the Common Expression Language (``common-expression-language``).

Why CEL. Three candidates were measured on the development machine (2 cores,
Python 3.11, min of 5 runs; the machine was shared, so read them as ratios):

============  =================================================  ==========
library       evaluation                                         µs / call
============  =================================================  ==========
CEL 0.10      ``event.properties.score <= 6``, whole 360 dicts    56
CEL           crossing ``after.x >= 1000 && before.x < 1000``,    58
              whole 360 dicts converted per call
CEL           same, only the referenced fields in the context      5.9 – 6.2
CEL           same, a prebuilt ``Context`` (execute alone)         0.4
rule-engine   score / crossing                                     123 / 238
simpleeval    score / crossing, ``eval(str)`` (re-parses)          13 / 30
simpleeval    crossing, pre-parsed AST via the private ``_eval``   12
============  =================================================  ==========

Error for ``after.lifetime_spend >=`` (a truncated condition):

* CEL: ``<input>:1:25: Syntax error: mismatched input '<EOF>' expecting {...}``
  with the source line and a caret under the column;
* rule-engine: ``RuleSyntaxError: ('syntax error', None)`` (no position);
* simpleeval: Python's ``SyntaxError: invalid syntax (<unknown>, line 1)``.

CEL is also the only one that is a specification (non-Turing-complete, no side
effects, no attribute access into Python objects), not a sandbox over Python's
grammar, and marketing may already know it from other tools. Its one cost is
converting Python values into CEL values (about 1 µs a scalar and 3 µs a map),
so the engine never hands it a whole customer-360:

* each compiled expression records which fields of ``before``/``after``/``event``
  it reads, and the context is built once per event with only those;
* cheap controls (consent, once-per, cooldown, cap) and the native
  ``crosses``/``enters`` guards run before it;
* the simplest shape (comparisons joined by ``&&``) runs through
  ``rules.native``, a fast path derived from the CEL text that defers to CEL
  whenever the two could disagree.

With the default pack on a synthetic history (85k events, 3,000 customers) the
on-event evaluation costs 0.6–1.3 µs per event averaged over the mix (most
event types meet no rule): about 2.5 µs per email_opened, 7.5 µs per purchase
(three rules, often firing); ``fire_due`` before an event costs 0.8 µs and
``due_timers`` 2.5 µs per profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import cel

from rules.budget import cost_problem

ROOTS: Final = frozenset({"event", "before", "after", "now"})
"""The variables a condition may read; ``event`` only in on-event rules."""

_STRING: Final = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_FIELD: Final = re.compile(r"\b(event|before|after)\s*\.\s*([A-Za-z_]\w*)")
_POSITION: Final = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


class ExpressionError(ValueError):
    """A condition that does not compile or run; ``line``/``column`` are 1-based
    positions inside the expression text, when CEL reports them."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled CEL expression and what it reads.

    ``fields`` maps a root (``event``, ``before``, ``after``) to the attribute
    names the text selects on it, so the evaluator computes and converts only
    those. ``roots`` are the top-level variables CEL reports (comprehension
    variables included, which is why unknown roots are caught by a dry run at
    load rather than here).
    """

    source: str
    program: cel.Program
    roots: frozenset[str]
    fields: dict[str, frozenset[str]]

    def run(self, context: cel.Context) -> Any:
        """The value, or ``ExpressionError`` for anything CEL refuses at run time."""
        try:
            return self.program.execute(context)
        except Exception as exc:  # CEL raises KeyError, TypeError, RuntimeError, ...
            raise ExpressionError(_runtime_reason(exc)) from None

    def test(self, context: cel.Context) -> bool:
        """True only for a CEL ``true``. A condition that cannot be judged (a
        null field, a missing optional property) is not met: a trigger must be
        right, and an error on one customer must not stop the pipeline."""
        try:
            return self.program.execute(context) is True
        except Exception:
            return False


def compile_expression(source: str) -> Expression:
    """Compile once at load; raises ``ExpressionError`` with the position, or
    for an expression over the evaluation budget (``rules.budget``)."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    problem = cost_problem(_STRING.sub("''", source))
    if problem is not None:
        raise ExpressionError(problem)
    try:
        program = cel.compile(source)
    except Exception as exc:
        raise _compile_error(str(exc)) from None
    fields: dict[str, set[str]] = {}
    for root, name in _FIELD.findall(_STRING.sub("''", source)):
        fields.setdefault(root, set()).add(name)
    return Expression(
        source,
        program,
        frozenset(program.variables()),
        {root: frozenset(names) for root, names in fields.items()},
    )


def _compile_error(message: str) -> ExpressionError:
    match = _POSITION.search(message)
    if match is None:
        return ExpressionError(message.splitlines()[0] if message else "invalid expression")
    return ExpressionError(match.group(3).strip(), int(match.group(1)), int(match.group(2)))


def _runtime_reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key {exc.args[0]!r}" if exc.args else "no such key"
    text = str(exc).split(". ")[0]
    return text or type(exc).__name__
