"""docs/architecture.md stays true to the layout: every product file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`((?:events|projections|rules|consumers|engage)/[\w/]+(?:\.py|/))`")


def test_every_file_the_architecture_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(NAMED.findall(text))
    assert len(named) > 20  # the path of an event names a file at each step
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
