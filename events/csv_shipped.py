"""The CSV mappings shipped in ``events/mappings/`` (``--map orders``).

Apart from ``events.csv_mapping`` so that the CLI can name them in its help
without importing pydantic, which took about 50 ms of every command's start."""

from __future__ import annotations

from typing import Final

SHIPPED: Final = ("orders", "nps-survey", "support-cases", "contacts")
