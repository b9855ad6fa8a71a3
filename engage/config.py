"""Settings from the environment, the one place that reads it.

``ENGAGE_DATABASE_URL`` picks an existing PostgreSQL server; without it an
embedded server keeps its data under ``ENGAGE_HOME``, or else under the
nearest ``.engage`` directory in the current directory or its parents (as git
finds ``.git``), or else a new ``./.engage``. ``ENGAGE_KAFKA_BOOTSTRAP``
makes the log Kafka (the scale-out mode), with topics named
``<ENGAGE_KAFKA_TOPIC_PREFIX>.touchpoints`` and so on (default prefix ``engage``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from engage.errors import ConfigError
from events.limits import DEFAULT_MAX_FUTURE
from events.redact import mask_url

DEFAULT_PARTITIONS = 8
DEFAULT_LATENESS = 5 * 60 * 1_000_000
"""How late a touchpoint may arrive and still be judged before timers pass it."""
DEFAULT_CLOCK_STEP = 60 * 1_000_000
"""At most one clock record per partition per this much quiet."""
HOME_DIR = ".engage"


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
    lateness: int = DEFAULT_LATENESS
    """``ENGAGE_LATENESS``: a live processor's clock is at least the wall time minus this."""
    clock_step: int = DEFAULT_CLOCK_STEP
    """``ENGAGE_CLOCK_STEP``: the quiet that earns a partition a clock record."""
    master_key: str | None = None
    """``ENGAGE_MASTER_KEY``: the key that wraps every person key (base64 of 32
    bytes); unset, the key file ``ENGAGE_HOME/master.key`` (``events.master_key``)."""
    currency: str = "USD"
    """The currency money figures are shown in (``ENGAGE_CURRENCY``): amounts are
    summed as sent, with no conversion, so it is the one currency your events use
    (ingest's default for ``purchase`` is USD)."""

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
        lateness = _duration(env, "ENGAGE_LATENESS", DEFAULT_LATENESS)
        clock_step = _duration(env, "ENGAGE_CLOCK_STEP", DEFAULT_CLOCK_STEP)
        currency = (env.get("ENGAGE_CURRENCY") or "USD").upper()
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise ConfigError(f"ENGAGE_CURRENCY must be a 3-letter ISO 4217 code, got {currency!r}")
        return cls(
            max_future=_duration(env, "ENGAGE_MAX_FUTURE", DEFAULT_MAX_FUTURE),
            lateness=lateness,
            clock_step=clock_step,
            currency=currency,
            master_key=env.get("ENGAGE_MASTER_KEY") or None,
            database_url=url,
            home=Path(env["ENGAGE_HOME"]) if env.get("ENGAGE_HOME") else find_home(Path.cwd()),
            kafka_bootstrap=env.get("ENGAGE_KAFKA_BOOTSTRAP") or None,
            partitions=partitions,
            kafka_topic_prefix=env.get("ENGAGE_KAFKA_TOPIC_PREFIX") or "engage",
        )


def _duration(env: dict[str, str], name: str, default: int) -> int:
    from rules.durations import parse_duration

    text = env.get(name)
    if not text:
        return default
    try:
        value = parse_duration(text)
    except Exception:
        raise ConfigError(f"{name} must be a duration such as 5m or 1h, got {text!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {text!r}")
    return value


def find_home(start: Path) -> Path:
    """The nearest ``.engage`` directory in ``start`` or its parents, else
    ``start/.engage`` (created on first use). Without the search, running
    ``engage`` from a subdirectory silently started a second, empty database."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / HOME_DIR
        if candidate.is_dir():
            return candidate
    return start / HOME_DIR


def describe_database(settings: Settings) -> str:
    """Which database a command uses, for ``engage status`` and "unknown"
    errors: the embedded server's data directory, or the URL without its
    password."""
    url = settings.database_url
    if url is None:
        return f"{settings.home.resolve()} (embedded PostgreSQL)"
    return mask_url(url)


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
