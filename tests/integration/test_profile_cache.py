"""The pipeline's in-memory profiles never hide another writer's work or a rollback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.processor import Processor
from engage.config import Settings
from engage.errors import StorageError
from engage.runtime import Engine
from engage.synthetic import HistorySpec, generate_lines
from tests.conftest import TEST_PARTITIONS
from tests.helpers import profiles_by_id

SPEC = HistorySpec(customers=60, days=60, seed=11)
BATCH = 40


def _published(fresh_database: Callable[[], str], tmp_path: Path) -> Settings:
    settings = Settings(fresh_database(), tmp_path, None, TEST_PARTITIONS)
    with Engine.open(settings) as engine:
        engine.publisher().publish_lines(list(generate_lines(SPEC)), "cache")
    return settings


def _reference(fresh_database: Callable[[], str], tmp_path: Path) -> dict[str, object]:
    settings = _published(fresh_database, tmp_path)
    with Engine.open(settings) as engine:
        engine.processor(BATCH).run(until_idle=True)
        return dict(profiles_by_id(engine))


def test_alternating_writers_give_the_profiles_of_one(
    fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """Two processors with their own caches take turns on the same partitions:
    each must notice the other's batches and reload, or counts go missing."""
    expected = _reference(fresh_database, tmp_path)
    settings = _published(fresh_database, tmp_path)
    with Engine.open(settings) as first, Engine.open(settings) as second:
        processors = [first.processor(BATCH), second.processor(BATCH)]
        turn = 0
        while processors[turn % 2].step().records:
            turn += 1
        assert turn > 4
        for processor in processors:
            processor.run(until_idle=True)
        assert profiles_by_id(first) == expected


def test_a_failed_commit_drops_the_cached_profiles(
    fresh_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose transaction fails has already folded into the cached
    profiles; they must be forgotten so the retried batch is not counted twice."""
    expected = _reference(fresh_database, tmp_path)
    settings = _published(fresh_database, tmp_path)
    with Engine.open(settings) as engine:
        processor: Processor = engine.processor(BATCH)
        assert processor.step().records
        assert len(processor.pipeline.cache) > 0
        store_tx = type(engine.store._tx)
        real = store_tx.save_offsets

        def fail(*args: object, **kwargs: object) -> None:
            raise StorageError("injected failure before commit")

        # a mock only for what cannot otherwise be provoked: a commit that fails
        # after the fold has run
        monkeypatch.setattr(store_tx, "save_offsets", fail)
        with pytest.raises(StorageError):
            processor.step()
        assert len(processor.pipeline.cache) == 0
        monkeypatch.setattr(store_tx, "save_offsets", real)
        processor.run(until_idle=True)
        assert profiles_by_id(engine) == expected
