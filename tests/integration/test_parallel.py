"""Partition-parallel processing gives exactly what one process gives."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from engage.config import Settings
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from tests.conftest import TEST_PARTITIONS
from tests.helpers import profiles_by_id

SPEC = HistorySpec(customers=200, days=90, seed=5)


def test_two_workers_equal_one(
    fresh_database: Callable[[], str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    history = list(generate_lines(SPEC))
    single_dsn, parallel_dsn = fresh_database(), fresh_database()
    for dsn in (single_dsn, parallel_dsn):
        with Engine.open(Settings(dsn, tmp_path / ".engage", None, TEST_PARTITIONS)) as engine:
            engine.publisher().publish_lines(history, "parallel")
    for dsn, workers in ((single_dsn, "1"), (parallel_dsn, "2")):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "engage.cli",
                "run",
                "--until-idle",
                "--workers",
                workers,
                "--batch-size",
                "50",
            ],
            env={**cli_env, "ENGAGE_DATABASE_URL": dsn},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    home = tmp_path / ".engage"  # the CLI's ENGAGE_HOME: the same master key
    with (
        Engine.open(Settings(single_dsn, home, None, TEST_PARTITIONS)) as single,
        Engine.open(Settings(parallel_dsn, home, None, TEST_PARTITIONS)) as parallel,
    ):
        expected = profiles_by_id(single)
        assert len(expected) == SPEC.customers
        assert profiles_by_id(parallel) == expected
        single_triggers = sorted(r.payload for r in single.log.find_triggers())
        assert single_triggers
        assert sorted(r.payload for r in parallel.log.find_triggers()) == single_triggers
        assert parallel.processor().lag() == 0
