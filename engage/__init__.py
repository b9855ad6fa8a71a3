"""Engage: the composition root (CLI, configuration, database bootstrap).

The engine itself lives in the sibling top-level packages ``events``,
``projections``, ``rules`` and ``consumers``; this package only wires them.
"""

__version__ = "0.1.0"
