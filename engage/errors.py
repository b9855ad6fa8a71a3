"""The composition root's name for the errors, which live in ``events.errors``
(the lowest layer that raises them)."""

from events.errors import ConfigError, EngageError, NotFound, StorageError

__all__ = ["ConfigError", "EngageError", "NotFound", "StorageError"]
