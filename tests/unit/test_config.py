"""Settings from the environment: where the data lives, found like git finds ``.git``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engage.config import Settings, describe_database, find_home


def test_the_nearest_engage_directory_in_the_parents_is_used(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "src" / "deeper"
    deep.mkdir(parents=True)
    # none yet: a new one here, unless this machine has one above the test's
    # directory (``engage demo`` once run in /tmp): then that one
    above = [p / ".engage" for p in tmp_path.resolve().parents if (p / ".engage").is_dir()]
    assert find_home(deep) == (above[0] if above else deep.resolve() / ".engage")
    (project / ".engage").mkdir()
    assert find_home(deep) == project / ".engage"
    assert find_home(project) == project / ".engage"
    (deep / ".engage").mkdir()
    assert find_home(deep) == deep / ".engage"  # the nearest wins


def test_engage_home_wins_over_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".engage").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert Settings.from_env({}).home == tmp_path / ".engage"
    assert Settings.from_env({"ENGAGE_HOME": "elsewhere"}).home == Path("elsewhere")


def test_describe_database_names_the_directory_or_the_url_without_password(
    tmp_path: Path,
) -> None:
    embedded = Settings(database_url=None, home=tmp_path / ".engage", kafka_bootstrap=None)
    assert describe_database(embedded) == f"{tmp_path / '.engage'} (embedded PostgreSQL)"
    url = Settings(
        database_url="postgresql://ann:s3cret@db.example:5433/engage",
        home=tmp_path,
        kafka_bootstrap=None,
    )
    assert describe_database(url) == "postgresql://ann:***@db.example:5433/engage"
    assert "s3cret" not in describe_database(url)
    libpq = Settings(
        database_url="host=db dbname=engage password=s3cret", home=tmp_path, kafka_bootstrap=None
    )
    assert "s3cret" not in describe_database(libpq) and "dbname=engage" in describe_database(libpq)
    assert os.sep in describe_database(embedded)
