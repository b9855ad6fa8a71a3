"""SIGTERM stops the long-running commands the way Ctrl-C does, and the
embedded PostgreSQL server stops with the last command using it.

These run against the embedded server on purpose (no ENGAGE_DATABASE_URL):
it is what a process killed by a service manager, `timeout` or `docker stop`
used to leave running, with its id stuck in the server's handle list so that
no later command ever stopped it either."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.http_support import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def home_env() -> Iterator[dict[str, str]]:
    # not under pytest's tmp_path: a concurrent pytest session prunes old
    # numbered temp directories, a live server's data with them (tests/conftest.py)
    home = Path(tempfile.mkdtemp(prefix="engage-signals-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_HOME"] = str(home / ".engage")
    env["ENGAGE_PARTITIONS"] = "4"
    yield env
    for proc in _servers(home / ".engage" / "pgdata"):  # never leave one behind
        proc.kill()
    shutil.rmtree(home, ignore_errors=True)


def _servers(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata.resolve()) in " ".join(cmdline):
            found.append(proc)
    return found


def _handles(env: dict[str, str]) -> list[int]:
    """The processes holding the embedded server (the wheel's handle list).
    The wheel rewrites the file in place, so a read can land mid-write and
    see it empty or cut: read again until it parses (a CI run once failed on
    an empty read while ``engage serve`` was starting)."""
    path = Path(env["ENGAGE_HOME"]) / "pgdata" / ".handle_pids.json"
    for _ in range(100):
        if not path.exists():
            return []
        try:
            return [int(p) for p in json.loads(path.read_text())]
        except ValueError:  # mid-write
            time.sleep(0.01)
    raise AssertionError(f"{path} never held a JSON list: {path.read_text()!r}")


def _engage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engage.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "engage.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _no_server_left(env: dict[str, str]) -> None:
    pgdata = Path(env["ENGAGE_HOME"]) / "pgdata"
    wait_for(lambda: not _servers(pgdata), 30, "the embedded server to stop")
    assert not (pgdata / "postmaster.pid").exists()
    assert _handles(env) == []


LONG_RUNNING = {
    "run": (("run",), "waiting for new events"),
    "serve": (("serve", "--port", "0"), "Ctrl-C to stop"),
    "triggers --follow": (("triggers", "--json", "--follow"), None),
}


@pytest.mark.parametrize("name", list(LONG_RUNNING))
def test_sigterm_stops_the_command_and_the_embedded_server(
    home_env: dict[str, str], tmp_path: Path, name: str
) -> None:
    args, ready = LONG_RUNNING[name]
    log = tmp_path / "command.log"
    process = _start(home_env, log, *args)
    try:
        pgdata = Path(home_env["ENGAGE_HOME"]) / "pgdata"
        wait_for(
            lambda: process.pid in _handles(home_env) or process.poll() is not None,
            120,
            f"engage {name} to start the embedded server",
        )
        if ready is not None:
            wait_for(lambda: ready in log.read_text() or process.poll() is not None, 60, ready)
        assert process.poll() is None, log.read_text()
        assert _servers(pgdata)
        # another command meanwhile shares the server and leaves it running
        status = _engage(home_env, "status")
        assert status.returncode == 0, status.stderr
        assert _servers(pgdata) and _handles(home_env) == [process.pid]

        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert code in (0, 128 + signal.SIGTERM), output
    assert "Traceback" not in output
    _no_server_left(home_env)


def test_a_killed_commands_stale_handle_no_longer_keeps_the_server_up(
    home_env: dict[str, str], tmp_path: Path
) -> None:
    process = _start(home_env, tmp_path / "run.log", "run")
    wait_for(lambda: process.pid in _handles(home_env), 120, "engage run to start")
    process.kill()  # SIGKILL: no exit handler runs, its id stays in the list
    process.wait(timeout=30)
    pgdata = Path(home_env["ENGAGE_HOME"]) / "pgdata"
    assert _servers(pgdata) and _handles(home_env) == [process.pid]

    status = _engage(home_env, "status")  # the next command clears the dead id
    assert status.returncode == 0, status.stderr
    _no_server_left(home_env)
