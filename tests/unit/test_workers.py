"""How many processes ``engage run --until-idle`` (and the demo) start when the
user does not say: a spawned worker costs about a second before it reads a
record, so a small backlog is cleared by one process (``consumers.parallel``)."""

from __future__ import annotations

from consumers.parallel import SMALL_BACKLOG, default_workers, workers_for


def test_a_small_backlog_is_one_process() -> None:
    assert workers_for(0) == workers_for(1) == workers_for(SMALL_BACKLOG - 1) == 1


def test_a_large_backlog_takes_one_process_per_core_up_to_four() -> None:
    assert workers_for(SMALL_BACKLOG) == workers_for(10 * SMALL_BACKLOG) == default_workers()
    assert 1 <= default_workers() <= 4
