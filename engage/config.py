"""Settings from the environment, the one place that reads it.

``ENGAGE_DATABASE_URL`` picks an existing PostgreSQL server; without it an
embedded server keeps its data under ``ENGAGE_HOME``. ``ENGAGE_KAFKA_BOOTSTRAP``
makes the log Kafka (the scale-out mode), with topics named
``<ENGAGE_KAFKA_TOPIC_PREFIX>.touchpoints`` and so on (default prefix ``engage``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from engage.errors import ConfigError
from engage.redact import mask_url
from events.limits import DEFAULT_MAX_FUTURE

DEFAULT_PARTITIONS = 8


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    home: Path
    kafka_bootstrap: str | None
    partitions: int = DEFAULT_PARTITIONS
    kafka_topic_prefix: str = "engage"
    """Topics are ``<prefix>.touchpoints``, ``<prefix>.triggers``, ``<prefix>.dlq``."""
    max_future: int = DEFAULT_MAX_FUTURE
    """``ENGAGE_MAX_FUTURE``: how far past now an ``occurred_at`` may lie (µs)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        url = env.get("ENGAGE_DATABASE_URL") or None
        if url is not None:
            check_database_url(url)
        parts = env.get("ENGAGE_PARTITIONS", str(DEFAULT_PARTITIONS))
        try:
            partitions = int(parts)
            if not 1 <= partitions <= 1024:
                raise ValueError
        except ValueError:
            raise ConfigError(f"ENGAGE_PARTITIONS must be 1 to 1024, got {parts!r}") from None
        return cls(
            max_future=_max_future(env.get("ENGAGE_MAX_FUTURE") or "1d"),
            database_url=url,
            home=Path(env.get("ENGAGE_HOME") or ".engage"),
            kafka_bootstrap=env.get("ENGAGE_KAFKA_BOOTSTRAP") or None,
            partitions=partitions,
            kafka_topic_prefix=env.get("ENGAGE_KAFKA_TOPIC_PREFIX") or "engage",
        )


def _max_future(text: str) -> int:
    from rules.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"ENGAGE_MAX_FUTURE: {exc}") from None


def check_database_url(url: str) -> None:
    """Accept a ``postgresql://`` URL or a libpq ``key=value`` string; refuse
    anything else up front, before a confusing driver error can."""
    if "://" in url:
        try:
            scheme = urlparse(url).scheme  # raises for a malformed IPv6 host
        except ValueError as exc:
            raise ConfigError(
                f"ENGAGE_DATABASE_URL is not a valid URL ({exc}): {mask_url(url)!r}"
            ) from None
        if scheme not in ("postgres", "postgresql"):
            raise ConfigError(
                f"ENGAGE_DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}"
            )
        return
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception:
        raise ConfigError(
            "ENGAGE_DATABASE_URL is neither a postgresql:// URL nor a libpq string: "
            f"{mask_url(url)!r}"
        ) from None
    if "=" not in url:
        raise ConfigError(
            "ENGAGE_DATABASE_URL is neither a postgresql:// URL nor a libpq string: "
            f"{mask_url(url)!r}"
        )
