"""Crash safety, tested with ``kill -9``, not by hoping.

A processor is killed with SIGKILL several times while it works through a
history in small batches, restarted each time, and the final profiles must
equal those of a clean, uninterrupted run in another database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from engage.config import Settings
from engage.runtime import Engine
from engage.synthetic import LONG_START, HistorySpec, generate_lines
from events.log import TOUCHPOINTS
from events.timefmt import parse_iso
from tests.conftest import TEST_PARTITIONS
from tests.helpers import profiles_by_id

SPEC = HistorySpec(customers=300, days=120, seed=11)
NOW = "2026-06-15T00:00:00Z"
LONG_SPEC = HistorySpec(customers=400, days=540, start=LONG_START, seed=11, shape="long")
LONG_NOW = "2025-12-31T00:00:00Z"
"""The long shape fires an inactivity or win-back timer about once per purchase,
so the kills land in batches busy with the timer path."""
"""Stands in for the wall time: the live CLI run then writes its clock records
at this instant, as the clean run does, so the two logs and clocks agree."""


@pytest.fixture
def second_database(fresh_database: Callable[[], str]) -> str:
    return fresh_database()


def _engine(dsn: str, tmp: str) -> Engine:
    from pathlib import Path

    return Engine.open(Settings(dsn, Path(tmp) / ".engage", None, TEST_PARTITIONS))


KILL_DELAYS = (0.05, 0.3, 0.11, 0.2, 0.0)

RUN = [sys.executable, "-m", "engage.cli", "run", "--until-idle", "--batch-size", "25"]


def _start(env: dict[str, str], now: str = NOW) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*RUN, "--now", now],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def applied(engine: Engine) -> int:
    return sum(engine.store.offsets("engage-processor", TOUCHPOINTS).values())


def kill_repeatedly(
    engine: Engine, env: dict[str, str], at: str = NOW, delays: tuple[float, ...] = KILL_DELAYS
) -> int:
    """Start ``engage run`` again and again, each time waiting until it has
    committed progress and killing it with SIGKILL a moment later; stops when
    the log is done or the delays are used up. At least two kills must land,
    one of them with records still to apply (a kill can also land while a run
    that has just applied the last one is exiting: that one proves nothing)."""
    total = sum(engine.log.heads(TOUCHPOINTS).values())
    kills = mid_run = 0
    for delay in delays:
        before = applied(engine)
        proc = _start(env, at)
        deadline = time.monotonic() + 60
        # wait until this run has committed progress, then kill it at an arbitrary moment
        while time.monotonic() < deadline and proc.poll() is None:
            if applied(engine) > before:
                break
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
            break
        landed = applied(engine)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        mid_run += landed < total
        if applied(engine) >= total:
            break
    assert kills >= 2, "the processor finished before it could be killed twice"
    assert mid_run >= 1, "kills should land mid-run"
    return kills


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "at"), [(SPEC, NOW), (LONG_SPEC, LONG_NOW)], ids=["short", "long"]
)
def test_kill_9_mid_batch_then_restart_equals_a_clean_run(
    spec: HistorySpec,
    at: str,
    database: str,
    second_database: str,
    cli_env: dict[str, str],
    tmp_path: os.PathLike[str],
) -> None:
    history = list(generate_lines(spec))
    crashed = _engine(database, str(tmp_path))
    clean = _engine(second_database, str(tmp_path))
    try:
        assert crashed.publisher().publish_lines(history, "crash").accepted == len(history)
        clean.publisher().publish_lines(history, "clean")
        kill_repeatedly(crashed, cli_env, at)

        final = _start(cli_env, at)
        _, stderr = final.communicate(timeout=300)
        assert final.returncode == 0, stderr.decode()
        # the run ended by moving every partition's clock to --now: one clock record each
        total = sum(crashed.log.heads(TOUCHPOINTS).values())
        assert total == len(history) + TEST_PARTITIONS
        assert sum(crashed.store.offsets("engage-processor", TOUCHPOINTS).values()) == total

        clean.processor().run(until_idle=True, now=parse_iso(at))
        after_crashes = profiles_by_id(crashed)
        expected = profiles_by_id(clean)
        assert len(after_crashes) == spec.customers
        assert after_crashes == expected
        assert crashed.store.clock("engage-processor") == clean.store.clock("engage-processor")
        crashed_triggers = sorted(r.payload for r in crashed.log.find_triggers())
        clean_triggers = sorted(r.payload for r in clean.log.find_triggers())
        assert clean_triggers, "the history should fire triggers"
        assert crashed_triggers == clean_triggers
    finally:
        crashed.close()
        clean.close()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the field after the parenthesised command name: state, then ppid
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process parents from /proc")
def test_workers_exit_when_their_parent_is_killed(
    database: str, cli_env: dict[str, str], tmp_path: os.PathLike[str]
) -> None:
    """``kill -9`` of a parallel ``engage run`` must not leave its workers
    processing on, unseen and unkillable by Ctrl-C."""
    history = list(generate_lines(SPEC))
    engine = _engine(database, str(tmp_path))
    try:
        engine.publisher().publish_lines(history, "orphans")
    finally:
        engine.close()
    command = [sys.executable, "-m", "engage.cli", "run", "--until-idle", "--batch-size", "25"]
    proc = subprocess.Popen(
        [*command, "--workers", "2"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = {c for c in _children(proc.pid) if _alive(c)}
            time.sleep(0.1)
        assert len(workers) >= 2, "the parallel run never started its workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
