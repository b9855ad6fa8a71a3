"""No product module over 500 lines: a module that size mixes concerns (issue 10).

Counted from the source (no import runs), over every package of the product.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("events", "projections", "rules", "consumers", "engage")
LIMIT = 500


def test_no_product_module_is_over_500_lines() -> None:
    modules = [path for package in PRODUCT for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(modules) > 50  # the packages are really there
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert too_long == {}
