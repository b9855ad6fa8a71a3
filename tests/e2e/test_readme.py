"""The README, walked as a new user walks it: every command, rule file and
HTTP call in its code blocks, as written, from a fresh ENGAGE_HOME, after
``engage demo``; then the guides it hands the reader on to with commands that
continue its session (``GUIDES``: the HTTP walk-through, Kafka mode), in the
same directory and environment.

The commands are read from the README itself, so the guide and this test
cannot drift apart: a fenced block tagged ``bash`` is run line by line (a
command continued over lines, by a backslash or an open quote, is one
command); a block tagged ``file=NAME`` (``json file=events.jsonl``, ``yaml
file=my-rules.yaml``) is saved under that name first; ``text`` blocks are
example output and are not run.

What differs from a person at a terminal, and why:

* lines that install or develop (``pip``, ``pytest``, ``ruff``, ``docker``...)
  are skipped: the test runs inside the installed checkout;
* ``ENGAGE_DEMO_CUSTOMERS`` makes ``engage demo`` generate a tenth of its
  default history (1,000 customers): every later command runs on it the same
  way, and the demo's size is not what the walk checks (``test_demo_*`` in
  tests/e2e/test_cli.py run the demo itself);
* the ports the README names (8000 for ``engage serve``, 9000 for the webhook
  receiver, 9092 for the broker) are swapped for free ones, so two runs on one
  machine cannot collide;
* ``python -m tests.kafka_broker`` is "from a checkout": PYTHONPATH names it;
* a command that keeps running (``engage run``, ``serve``, ``worker``,
  ``webhooks listen``, ``--follow``) runs until it has shown it works, then
  gets SIGTERM, as Ctrl-C would end it; ones started with ``&`` run until the
  end of the walk;
* a read right after a post (``curl -f``, ``engage webhooks log``) is retried
  for a while: processing and delivery are asynchronous, a person would look
  again too.

Checked for every command: exit status 0, no traceback, some output, JSON
that parses where ``--json`` or the API promises it (with the contract's keys
for profiles and triggers); at the end, every background process stops
cleanly on SIGTERM and no embedded PostgreSQL server is left running. The
numbers the demo prints are not asserted: the synthetic history may change.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from tests.e2e.test_cli import CONTRACT_KEYS
from tests.e2e.test_signals import _servers
from tests.http_support import assert_not_blank, chromium_page, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# in the order a reader meets them: each continues the README's session
GUIDES = (ROOT / "docs" / "http.md", ROOT / "docs" / "kafka.md")
DEMO_CUSTOMERS = 1_000
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SKIPPED = ("pip ", "pytest", "python3 -m venv", ". .venv", "bash .ci/run", "ruff", "mypy")
SKIPPED += ("docker", "python bench/")
PORTS = (8000, 9000, 9092)
TRIGGER_KEYS = {"trigger_id", "rule_id", "rule_version", "kind", "customer_id", "fired_at"}
TRIGGER_KEYS |= {"caused_by", "details"}


@dataclass
class Block:
    lang: str
    info: str
    body: str
    line: int


def readme_blocks(text: str) -> list[Block]:
    return [
        Block(m.group(1), m.group(2).strip(), m.group(3), text[: m.start()].count("\n") + 1)
        for m in FENCE.finditer(text)
    ]


def commands(body: str) -> Iterator[str]:
    """Whole commands: lines joined while a backslash or an open quote continues them."""
    pending = ""
    for line in body.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            yield pending.strip()
        pending = ""
    assert not pending, f"unfinished command in the README: {pending!r}"


def _words(command: str) -> list[str]:
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    return words[:-1] if words and words[-1] == "&" else words


def _uncommented(command: str) -> str:
    """The command without a trailing ``# comment`` (one with no quote after it)."""
    return re.sub(r"\s+#[^'\"\n]*$", "", command).rstrip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Background:
    command: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Walk:
    cwd: Path
    env: dict[str, str]
    ports: dict[int, int]
    background: list[Background] = field(default_factory=list)
    homes: set[Path] = field(default_factory=set)
    ran: list[str] = field(default_factory=list)

    def localise(self, command: str) -> str:
        for readme_port, port in self.ports.items():
            command = re.sub(rf"\b{readme_port}\b", str(port), command)
        if re.match(r"^engage serve\b", command) and "--port" not in command:
            command = command.replace("engage serve", f"engage serve --port {self.ports[8000]}", 1)
        return command

    def home(self) -> Path:
        return (self.cwd / self.env["ENGAGE_HOME"]).resolve()

    def run(self, command: str) -> None:
        words = _words(command)
        if command.startswith(SKIPPED):
            return
        self.ran.append(command)
        command = self.localise(_uncommented(command))
        self.homes.add(self.home())
        if words[0] == "export" or re.match(r"^[A-Z_]+=", words[0]):
            self._assign(command)
        elif command.rstrip().endswith("&"):
            self._start(command.rstrip().rstrip("&").strip(), words)
        elif self._keeps_running(words):
            self._until_shown(command, words)
        else:
            self._once(command, words)

    def _bash(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _assign(self, command: str) -> None:
        """``export A=$(...)``: run it in bash as written and keep the environment."""
        result = self._bash(f"set -e\n{command}\nenv -0")
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        names = re.findall(r"\b([A-Z_][A-Z0-9_]*)=", command)
        fresh = dict(
            item.split("=", 1) for item in result.stdout.split("\0") if "=" in item and item
        )
        for name in names:
            assert fresh.get(name), f"{command}: {name} came out empty\n{result.stderr}"
            self.env[name] = fresh[name]

    @staticmethod
    def _keeps_running(words: list[str]) -> bool:
        if words[:2] == ["engage", "run"]:
            return "--until-idle" not in words
        return "--follow" in words or words[:2] in (["engage", "serve"], ["engage", "worker"])

    def _popen(self, command: str) -> Background:
        log = self.cwd / f"bg-{len(self.background)}-{len(self.ran)}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        return Background(command, process, log, handle)

    def _start(self, command: str, words: list[str]) -> None:
        bg = self._popen(command)
        self.background.append(bg)
        after = zip(words[1:], words[:-1], strict=True)
        port = next((int(w) for w, p in after if p == "--port"), None)
        if words[:2] == ["engage", "serve"]:
            port = self.ports[8000]
            ready = lambda: _healthy(port)  # noqa: E731
        elif port is not None:
            ready = lambda: _listening(int(self.localise(str(port))))  # noqa: E731
        else:
            ready = lambda: True  # noqa: E731
        wait_for(lambda: ready() or bg.process.poll() is not None, 180, command)
        assert bg.process.poll() is None, f"{command} exited:\n{bg.output()}"

    def _until_shown(self, command: str, words: list[str]) -> None:
        """Run a command that keeps running until it shows it works, then SIGTERM it."""
        bg = self._popen(command)
        try:
            if words[:2] == ["engage", "serve"]:
                shown = lambda: _healthy(self.ports[8000])  # noqa: E731
            elif "--follow" in words and "--json" in words:  # a trigger, not just a warning
                shown = lambda: "\n{" in "\n" + bg.output()  # noqa: E731
            elif "--follow" in words:
                shown = lambda: bool(bg.output().strip())  # noqa: E731
            else:
                shown = lambda: "waiting for new events" in bg.output()  # noqa: E731
            wait_for(lambda: shown() or bg.process.poll() is not None, 180, command)
            assert bg.process.poll() is None, f"{command} exited:\n{bg.output()}"
            bg.process.send_signal(signal.SIGTERM)
            code = bg.process.wait(timeout=60)
        finally:
            if bg.process.poll() is None:
                bg.process.kill()
            bg.handle.close()
        output = bg.output()
        # 0 when it was in its loop; 143 ("engage: terminated") when still starting
        assert code in (0, 128 + signal.SIGTERM), f"{command} exited {code} on SIGTERM:\n{output}"
        assert "Traceback" not in output, output
        if "--json" in words:
            for line in output.splitlines():
                if line.startswith("{"):
                    assert orjson.loads(line).keys() >= TRIGGER_KEYS, line

    def _once(self, command: str, words: list[str]) -> None:
        webhooks_log = words[:3] == ["engage", "webhooks", "log"]
        again = (words[0] == "curl" and "-fsS" in words) or webhooks_log
        deadline = time.monotonic() + (60 if again else 0)
        while True:
            result = self._bash(command)
            problem = self._problem(command, words, result)
            if problem is None or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert problem is None, f"README command failed: {command}\n{problem}"

    @staticmethod
    def _problem(
        command: str, words: list[str], result: subprocess.CompletedProcess[str]
    ) -> str | None:
        said = f"exit {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr}"
        if result.returncode != 0 or "Traceback" in result.stderr:
            return said
        if not (result.stdout.strip() or result.stderr.strip()):
            return "no output at all\n" + said
        if words[:3] == ["engage", "webhooks", "log"] and "delivered" not in result.stdout:
            return "no delivery yet\n" + said
        if words[0] == "curl" or "--json" in words:
            try:
                values: list[Any] = [orjson.loads(result.stdout)]
            except orjson.JSONDecodeError:
                try:
                    values = [orjson.loads(x) for x in result.stdout.splitlines() if x.strip()]
                except orjson.JSONDecodeError:
                    return "not JSON\n" + said
            if any(isinstance(v, dict) and "error" in v for v in values):
                return said
            if words[:2] == ["engage", "profile"] and not values[0].keys() >= CONTRACT_KEYS:
                return "not the customer-360 contract\n" + said
            if words[:2] == ["engage", "triggers"] and not (
                values and all(v.keys() >= TRIGGER_KEYS for v in values)
            ):
                return "not trigger JSON\n" + said
        return None

    def stop_all(self) -> list[str]:
        """SIGTERM every background process, newest first; their outputs."""
        outputs = []
        for bg in reversed(self.background):
            if bg.process.poll() is None:
                bg.process.send_signal(signal.SIGTERM)
            try:
                code = bg.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                bg.process.kill()
                raise
            finally:
                bg.handle.close()
            output = bg.output()
            assert code in (0, 128 + signal.SIGTERM), f"{bg.command} exited {code}:\n{output}"
            assert "Traceback" not in output, f"{bg.command}:\n{output}"
            outputs.append(output)
        return outputs


def test_the_parser_reads_whole_commands_and_files() -> None:
    body = 'one \\\n  two\ncurl -d \'{"a": 1,\n  "b": 2}\'\n# a comment\nexport A=$(x) &\n'
    assert list(commands(body)) == [
        "one \\\n  two",
        'curl -d \'{"a": 1,\n  "b": 2}\'',
        "export A=$(x) &",
    ]
    blocks = readme_blocks(README.read_text())
    files = {b.info.removeprefix("file=") for b in blocks if b.info.startswith("file=")}
    assert {"events.jsonl", "my-rules.yaml"} <= files
    assert sum(1 for b in blocks if b.lang == "bash") >= 8
    for guide in GUIDES:  # each is linked from the README, and has commands to walk
        assert f"](docs/{guide.name})" in README.read_text(), guide
        assert any(b.lang == "bash" for b in readme_blocks(guide.read_text())), guide


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Not under pytest's tmp_path: a concurrent pytest session prunes old
    numbered temp directories, embedded server and all (see tests/conftest.py)."""
    path = Path(tempfile.mkdtemp(prefix="engage-readme-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_walk_the_readme(workdir: Path) -> None:
    tmp_path = workdir
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["ENGAGE_HOME"] = str(tmp_path / ".engage")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # `python -m tests.kafka_broker` is run from a checkout
    env["ENGAGE_DEMO_CUSTOMERS"] = str(DEMO_CUSTOMERS)
    walk = Walk(tmp_path, env, {port: _free_port() for port in PORTS})
    try:
        for page in (README, *GUIDES):
            for block in readme_blocks(page.read_text()):
                if block.info.startswith("file="):
                    (tmp_path / block.info.removeprefix("file=")).write_text(block.body)
                elif block.lang == "bash":
                    for command in commands(block.body):
                        walk.run(command)
                        if command.startswith("curl") and "POST" in command:
                            _check_the_dashboard(walk)
        ran = "\n".join(walk.ran)
        for needed in ("engage demo", "engage serve", "engage worker", "engage backtest"):
            assert needed in ran, f"the README and its guides no longer run {needed}?"
        outputs = walk.stop_all()
        receiver = next(o for o in outputs if "signature" in o)
        assert "first-purchase-thank-you for cust-grace; signature ok" in receiver
    finally:  # after a failure: SIGTERM first, so the broker helper stops its broker too
        for bg in walk.background:
            if bg.process.poll() is None:
                bg.process.terminate()
                try:
                    bg.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    bg.process.kill()
    for home in walk.homes:  # the last command to leave stopped each embedded server
        wait_for(lambda home=home: not _servers(home / "pgdata"), 60, f"no server in {home}")


def _check_the_dashboard(walk: Walk) -> None:
    """Right after the README's post: the customer shows up in the dashboard's
    "Who to contact now" list, linked to its 360."""
    if not os.path.exists("/usr/bin/chromium"):
        return  # chromium_page skips the whole test; the CLI walk matters more here
    url = f"http://127.0.0.1:{walk.ports[8000]}"
    with chromium_page() as page:
        page.goto(url + "/")
        page.fill("#key", walk.env["READ_KEY"])
        page.click("#login-form button")
        page.wait_for_selector("#app:not([hidden])")
        # newest first by event time: the README's purchase is dated 2026-03-02, as it
        # tells the reader to filter
        page.fill("#contact-from", "2026-03-02")
        page.fill("#contact-to", "2026-03-02")
        page.select_option("#contact-kind", "thank_you")
        deadline = time.monotonic() + 60
        while "cust-grace" not in page.inner_text("#contact-list"):
            assert time.monotonic() < deadline, page.inner_text("#contact-list")
            page.click("#contact-form button[type=submit]")
            page.wait_for_timeout(500)
        page.click("#contact-list a:has-text('cust-grace')")
        page.wait_for_selector("#customer-title:has-text('cust-grace')")
        assert "€49.90" in page.inner_text("#timeline")  # the event's own currency
        assert_not_blank(page.screenshot(full_page=True, path=str(walk.cwd / "dashboard.png")))
