"""The one root error.

Every adapter translates its library's exceptions into an ``EngageError`` so the
CLI can print one clear line instead of a traceback.
"""


class EngageError(Exception):
    """Anything the user can act on: bad configuration, an unknown customer..."""


class ConfigError(EngageError):
    """Bad URL, bad environment variable, missing database."""


class NotFound(EngageError):
    """An unknown customer, rule or record."""


class StorageError(EngageError):
    """A database or broker failure, translated from the adapter's exception."""
