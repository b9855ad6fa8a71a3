"""The evaluation budget of a rule condition, judged from its text at load.

CEL has no loops, but its comprehension macros (``all``, ``exists``,
``exists_one``, ``map``, ``filter``) iterate over a list, and nested ones can
multiply: four nested ``.all()`` over a 100-element list are 10^8 steps per
event, which stopped a running engine at 100% CPU when hot-reloaded, and
three levels ran at 2 events/s. The CEL binding cannot interrupt an
evaluation, so an over-costly expression is refused when it is loaded; a hot
reload that fails this check keeps the last good rules.

The estimate follows what ingest allows (``events.limits``): an array holds
at most ``MAX_ARRAY`` elements and one free-form value at most
``MAX_ELEMENTS`` in all. So a comprehension over the event or a profile costs
``MAX_ARRAY`` steps; one nested in it over a part of the outer element
(``items.exists(i, i.tags.exists(t, ...))``) walks disjoint parts of one
value, at most ``MAX_ELEMENTS`` steps in all; but one nested over anything
else (``items.exists(i, items.exists(j, ...))``, a literal list, a ``map``
result) multiplies, and two such levels are already 10^6 steps, about half a
second of CEL on the development machine. Measured there: a comprehension
step costs about 0.45 µs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from events.limits import MAX_ARRAY, MAX_ELEMENTS

MAX_NESTING: Final = 3
"""Comprehensions inside comprehensions, at most (however cheap)."""
MAX_COST: Final = 100_000
"""Estimated steps per evaluation: about 45 ms of CEL at worst."""
MAX_LENGTH: Final = 4_096
"""Characters of one expression."""

_MACRO: Final = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)?")
_PATH: Final = re.compile(r"([A-Za-z_]\w*)(?:\s*\.\s*[A-Za-z_]\w*)*\s*$")
_TREES: Final = frozenset({"event", "before", "after"})
"""Roots whose lists are parts of one JSON tree (no element appears twice)."""


@dataclass(frozen=True, slots=True)
class Comprehension:
    depth: int
    """Nesting level, 1 = outermost."""
    cost: int
    """Estimated steps, all enclosing iterations included."""


@dataclass(frozen=True, slots=True)
class _Open:
    paren: int  # paren depth at which the macro's arguments began
    var: str | None
    tree: bool  # its elements are parts of one JSON tree
    base: int  # how many times the comprehension over the tree's root is evaluated
    scale: int  # how many times its body runs, at most


def comprehensions(text: str) -> list[Comprehension]:
    """Each comprehension macro in ``text`` (string literals blanked out)
    with its nesting depth and estimated cost."""
    found: list[Comprehension] = []
    open_: list[_Open] = []
    paren = 0
    i = 0
    while i < len(text):
        match = _MACRO.match(text, i)
        if match is None:
            ch = text[i]
            if ch == "(":
                paren += 1
            elif ch == ")":
                if open_ and open_[-1].paren == paren:
                    open_.pop()
                paren -= 1
            i += 1
            continue
        receiver = _PATH.search(text, max(0, match.start() - 256), match.start())
        root = receiver.group(1) if receiver is not None else None
        outer = open_[-1].scale if open_ else 1
        owner = open_[-1] if open_ and open_[-1].var is not None and open_[-1].var == root else None
        if owner is not None and owner.tree:
            # over a part of an enclosing element: all its runs together walk
            # disjoint parts of one value
            base, tree = owner.base, True
            scale = base * MAX_ELEMENTS
        else:
            base, tree = outer, root in _TREES
            scale = outer * MAX_ARRAY
        found.append(Comprehension(len(open_) + 1, scale))
        paren += 1
        open_.append(_Open(paren, match.group(2), tree, base, scale))
        i = match.end()
    return found


def cost_problem(text: str) -> str | None:
    """Why ``text`` is over the budget, or None."""
    if len(text) > MAX_LENGTH:
        return f"the expression is {len(text)} characters long; at most {MAX_LENGTH}"
    found = comprehensions(text)
    deepest = max((c.depth for c in found), default=0)
    if deepest > MAX_NESTING:
        return (
            f"comprehensions (all/exists/exists_one/map/filter) nested {deepest} deep; at "
            f"most {MAX_NESTING}"
        )
    cost = sum(c.cost for c in found)
    if cost > MAX_COST:
        return (
            f"too costly: up to about {cost:,} steps per event ({len(found)} comprehensions; "
            f"lists hold up to {MAX_ARRAY:,} elements, and a comprehension nested in another "
            f"over a list that is not part of the outer element multiplies); at most "
            f"{MAX_COST:,}"
        )
    return None
