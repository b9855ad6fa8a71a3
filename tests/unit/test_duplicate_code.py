"""No 6-line copies across the product packages (issue 10).

A block written twice drifts: one copy gets the fix and the other keeps the
bug. The check is pylint's ``duplicate-code`` (R0801), a packaged checker CI
has, run over all the product packages at once so copies *between* packages
count too. Imports, docstrings, comments and function signatures are left
out: a port's signature repeated by its adapters is the point of a port, not
a copy. The second test runs the same check on a deliberate copy, so a change
to the options that blinds it fails here instead of passing silently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("events", "projections", "rules", "consumers", "engage", "schemas")
MIN_LINES = 6
"""The shortest copy that fails. pylint reports a run only when it is *longer*
than ``min-similarity-lines`` (``eff_cmn_nb > min_similarity_lines`` in
``pylint.checkers.symilar``), so the option is one less."""

CHECK = (
    "--rcfile=/dev/null",  # these options only, whatever a pylintrc says
    "--disable=all",
    "--enable=duplicate-code",
    f"--min-similarity-lines={MIN_LINES - 1}",
    "--ignore-imports=y",
    "--ignore-docstrings=y",
    "--ignore-comments=y",
    "--ignore-signatures=y",
    "--score=n",
)


def _duplicate_code(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pylint", *CHECK, *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_six_line_copies_in_the_product() -> None:
    packages = [ROOT / name for name in PRODUCT if (ROOT / name / "__init__.py").exists()]
    assert len(packages) >= 5  # the packages are really there
    result = _duplicate_code(packages, ROOT)
    assert "R0801" not in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


BLOCK = """
    for item in items:
        if item.kind == "purchase":
            total += item.amount
        elif item.kind == "refund":
            total -= item.amount
    return total
"""
"""Six lines, all code: exactly ``MIN_LINES``."""


def test_the_check_finds_a_six_line_copy(tmp_path: Path) -> None:
    assert len(BLOCK.strip().splitlines()) == MIN_LINES
    package = tmp_path / "copied"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text(f"def spend(items):\n    total = 0{BLOCK}")
    (package / "two.py").write_text(f"def balance(items, total):{BLOCK}")
    result = _duplicate_code([package], tmp_path)
    assert "R0801" in result.stdout, result.stdout + result.stderr
    assert "copied.one" in result.stdout and "copied.two" in result.stdout
