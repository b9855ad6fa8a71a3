"""Imports point down only: events ← projections ← rules ← consumers ← engage.

Read from the source with ``ast`` (no import runs), so a lazy import inside a
function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("events", "projections", "rules", "consumers", "engage")
PURE = (
    "rules/decide.py",
    "rules/evaluate.py",
    "rules/timers.py",
    "projections/evolve.py",
    "projections/identity.py",
    "projections/identity_json.py",
    "events/identity.py",
)
"""The pure core: no Kafka, psycopg or fastavro, never the clock."""
IMPURE = ("kafka", "faust", "psycopg", "fastavro", "time", "datetime")

ALLOWED_UPWARD: frozenset[tuple[str, str]] = frozenset()
"""Known upward imports still to remove: none left, and the list may only shrink
(the processes get ``consumers.ports`` factories rather than ``engage``'s Engine)."""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_module_imports_a_higher_layer(layer: str) -> None:
    higher = LAYERS[LAYERS.index(layer) + 1 :]
    wrong = []
    for path in _modules(layer):
        name = str(path.relative_to(ROOT))
        for module in _imports(path):
            top = module.split(".")[0]
            if top in higher and (name, top) not in ALLOWED_UPWARD:
                wrong.append(f"{name} imports {module}")
    assert wrong == []


def test_the_allowed_exceptions_are_still_needed() -> None:
    """An exception that no longer happens must leave the list."""
    for name, top in ALLOWED_UPWARD:
        assert any(m.split(".")[0] == top for m in _imports(ROOT / name)), (name, top)


@pytest.mark.parametrize("name", PURE)
def test_the_pure_core_imports_no_adapter_and_no_clock(name: str) -> None:
    imported = {m.split(".")[0] for m in _imports(ROOT / name)}
    assert imported.isdisjoint(IMPURE), imported & set(IMPURE)
