"""A native fast path for the simplest CEL shape: comparisons joined by ``&&``.

Measured with the default pack on a synthetic history, building a CEL context
(converting the fields into CEL values) cost about 4 µs per evaluation, more
than the fold of the event itself, while most real conditions are just
``after.opens_60d >= 5 && after.clicks_60d == 0``. For exactly that shape
(``path op literal`` or ``path op path``, joined by ``&&``) this module builds a
plain Python predicate that reads the views directly.

CEL stays the language and the judge: the text is still compiled and
dry-run by CEL at load, the fast path is only derived from it, and whenever a
comparison meets values whose CEL meaning could differ from Python's (a null,
a bool ordered, mixed kinds, numbers beyond 2**53) the predicate answers
``None`` and the caller asks CEL. A definite ``False`` in any conjunct is
final, as in CEL, where ``false && error`` is false.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from events.model import Micros, Touchpoint
from projections.profile import Profile
from rules.rule_fields import EVENT_FIELDS, field_getter

Operand = Callable[[Profile, Micros, Profile, Micros, Touchpoint | None], Any]
MISSING: Final = object()
"""An event property that is absent (CEL would raise; the fast path defers)."""
_EXACT: Final = 2**53

_TOKEN: Final = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<and>&&)"
    r"|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])"
    r"|(?P<str>'[^'\\\n]*'|\"[^\"\\\n]*\")"
    r"|(?P<lit>true|false)\b"
    r"|(?P<path>(?:before|after|event)(?:\.[A-Za-z_]\w*)+))"
)
_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class _Comparison:
    left: Operand
    op: str
    right: Operand

    def judge(
        self, before: Profile, b_at: Micros, after: Profile, a_at: Micros, event: Touchpoint | None
    ) -> bool | None:
        x = self.left(before, b_at, after, a_at, event)
        y = self.right(before, b_at, after, a_at, event)
        if _number(x) and _number(y):
            return _OPS[self.op](x, y)
        if type(x) is str and type(y) is str:
            return _OPS[self.op](x, y)
        if type(x) is bool and type(y) is bool and self.op in ("==", "!="):
            return _OPS[self.op](x, y)
        return None


def _number(value: object) -> bool:
    return type(value) in (int, float) and -_EXACT < value < _EXACT  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class NativeCondition:
    """``judge`` is True/False when decided natively, None when CEL must decide."""

    comparisons: tuple[_Comparison, ...]

    def judge(
        self, before: Profile, b_at: Micros, after: Profile, a_at: Micros, event: Touchpoint | None
    ) -> bool | None:
        undecided = False
        for comparison in self.comparisons:
            verdict = comparison.judge(before, b_at, after, a_at, event)
            if verdict is False:
                return False
            if verdict is None:
                undecided = True
        return None if undecided else True


def compile_native(source: str) -> NativeCondition | None:
    """The fast path for ``source``, or None when it is not of the simple shape."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = source.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return None
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    comparisons: list[_Comparison] = []
    for start in range(0, len(tokens), 4):
        chunk = tokens[start : start + 4]
        if len(chunk) < 3 or chunk[1][0] != "op" or (len(chunk) == 4 and chunk[3][0] != "and"):
            return None
        if start + 4 == len(tokens) and len(chunk) == 4:
            return None  # dangling &&
        left, right = _operand(*chunk[0]), _operand(*chunk[2])
        if left is None or right is None:
            return None
        comparisons.append(_Comparison(left, chunk[1][1], right))
    return NativeCondition(tuple(comparisons)) if comparisons else None


def _operand(kind: str, text: str) -> Operand | None:
    if kind == "num":
        number: Any = float(text) if "." in text else int(text)
        return lambda b, bt, a, at, e: number
    if kind == "str":
        string = text[1:-1]
        return lambda b, bt, a, at, e: string
    if kind == "lit":
        flag = text == "true"
        return lambda b, bt, a, at, e: flag
    if kind != "path":
        return None
    root, *names = text.split(".")
    if root in ("before", "after"):
        if len(names) != 1:
            return None
        try:
            getter = field_getter(names[0])
        except ValueError:
            return None
        if root == "before":
            return lambda b, bt, a, at, e: getter(b, bt)
        return lambda b, bt, a, at, e: getter(a, at)
    if names == ["properties", *names[1:]] and len(names) == 2:
        key = names[1]
        return lambda b, bt, a, at, e: MISSING if e is None else e.properties.get(key, MISSING)
    if len(names) == 1 and names[0] in EVENT_FIELDS - {"properties", "extra"}:
        attribute = names[0]
        return lambda b, bt, a, at, e: MISSING if e is None else getattr(e, attribute)
    return None


def compile_native_value(source: str) -> Operand | None:
    """A lone path (``event.properties.case_id``) read natively, else None."""
    match = _TOKEN.fullmatch(source.strip())
    if match is None or match.lastgroup != "path":
        return None
    return _operand("path", match.group("path"))
