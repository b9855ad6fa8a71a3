"""The evaluation budget of a rule condition, judged from its text at load.

CEL has no loops, but its comprehension macros (``all``, ``exists``,
``exists_one``, ``map``, ``filter``) iterate over a list, and nested ones
multiply: four nested ``.all()`` over a 100-element list are 10^8 steps per
event, which stopped a running engine at 100% CPU when hot-reloaded, and
three levels ran at 2 events/s. The CEL binding cannot interrupt an
evaluation, so an over-costly expression is refused when it is loaded; a hot
reload that fails this check keeps the last good rules.

The estimate assumes every list holds ``ASSUMED_LIST`` elements: each macro
costs that to the power of its nesting depth. Legitimate conditions (``any
item over 100``, ``every item in a category``) stay at depth one or two.
"""

from __future__ import annotations

import re
from typing import Final

MAX_NESTING: Final = 2
"""Comprehensions inside comprehensions, at most."""
ASSUMED_LIST: Final = 100
MAX_COST: Final = 100_000
"""Estimated steps per evaluation: ten two-level comprehensions."""
MAX_LENGTH: Final = 4_096
"""Characters of one expression."""

_MACRO: Final = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*\(")


def comprehensions(text: str) -> list[int]:
    """The nesting depth (1 = outermost) of each comprehension macro in
    ``text``, whose string literals are already blanked out."""
    depths: list[int] = []
    open_at: list[int] = []  # paren depth at which each open macro's arguments began
    paren = 0
    i = 0
    while i < len(text):
        match = _MACRO.match(text, i)
        if match is not None:
            paren += 1
            open_at.append(paren)
            depths.append(len(open_at))
            i = match.end()
            continue
        ch = text[i]
        if ch == "(":
            paren += 1
        elif ch == ")":
            if open_at and open_at[-1] == paren:
                open_at.pop()
            paren -= 1
        i += 1
    return depths


def cost_problem(text: str) -> str | None:
    """Why ``text`` is over the budget, or None."""
    if len(text) > MAX_LENGTH:
        return f"the expression is {len(text)} characters long; at most {MAX_LENGTH}"
    depths = comprehensions(text)
    deepest = max(depths, default=0)
    if deepest > MAX_NESTING:
        return (
            f"comprehensions (all/exists/exists_one/map/filter) nested {deepest} deep; at "
            f"most {MAX_NESTING}: each level multiplies the work per event by a list's length"
        )
    cost = sum(ASSUMED_LIST**d for d in depths)
    if cost > MAX_COST:
        return (
            f"too costly: about {cost:,} steps per event for {ASSUMED_LIST}-element lists "
            f"({len(depths)} comprehensions); at most {MAX_COST:,}"
        )
    return None
