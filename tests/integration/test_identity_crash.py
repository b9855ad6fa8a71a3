"""Identity under ``kill -9``: a processor killed again and again while it
works through a history full of merges (issue 13) ends with the profiles and
triggers of a clean, uninterrupted run: nothing lost, nothing doubled."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from engage.synthetic import HistorySpec, generate_lines
from engage.synthetic.identities import with_identities
from events.control import IDENTITY_TYPE
from events.ingest import parse_line
from events.model import Touchpoint
from events.timefmt import parse_iso
from tests.helpers import profiles_by_id
from tests.integration.test_crash import NOW, _engine, _start, kill_repeatedly

SPEC = HistorySpec(customers=200, days=120, seed=13)


def identity_history() -> list[Touchpoint]:
    """A synthetic history with many merges: 30% of events on a device, 5%
    linking it to its customer."""
    parsed = [parse_line(line, n) for n, line in enumerate(generate_lines(SPEC), 1)]
    plain = [e for e in parsed if isinstance(e, Touchpoint)]
    return with_identities(plain, seed=3, anonymous=0.30, linking=0.05)


@pytest.fixture
def second_database(fresh_database: Callable[[], str]) -> str:
    return fresh_database()


@pytest.mark.slow
def test_kill_9_during_merges_then_restart_equals_a_clean_run(
    database: str,
    second_database: str,
    cli_env: dict[str, str],
    tmp_path: os.PathLike[str],
) -> None:
    events = identity_history()
    crashed = _engine(database, str(tmp_path))
    clean = _engine(second_database, str(tmp_path))
    try:
        for engine in (crashed, clean):
            publisher = engine.publisher()
            for i in range(0, len(events), 1_000):
                assert publisher.publish_events(events[i : i + 1_000], [], "t").rejected == 0
        merges = crashed.log.clock_records(IDENTITY_TYPE)
        assert merges > 100, "the history should merge many persons"
        kill_repeatedly(crashed, cli_env, delays=(0.05, 0.3, 0.11, 0.2, 0.0, 0.15))

        final = _start(cli_env)
        _, stderr = final.communicate(timeout=300)
        assert final.returncode == 0, stderr.decode()
        clean.processor().run(until_idle=True, now=parse_iso(NOW))
        after_crashes = profiles_by_id(crashed)
        expected = profiles_by_id(clean)
        assert after_crashes == expected
        assert len(expected) < len({e.customer_id for e in events}), "persons were merged"
        crashed_triggers = sorted(r.payload for r in crashed.log.find_triggers())
        clean_triggers = sorted(r.payload for r in clean.log.find_triggers())
        assert clean_triggers and crashed_triggers == clean_triggers
    finally:
        crashed.close()
        clean.close()
