"""Background work that restarts itself: the processor and webhook delivery
inside ``engage serve``.

Each job is a callable that opens what it needs, runs until ``stop`` is set
and returns. A storage error (the database restarted, a connection dropped)
ends one attempt, not the job: the supervisor waits a moment and starts it
again, and the job carries on from its committed offsets. The jobs are built
by the composition root, so this module needs no engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from events.errors import EngageError

log = logging.getLogger("engage.supervisor")

Job = Callable[[threading.Event], None]


@dataclass
class Supervisor:
    """Runs named jobs on daemon threads, restarting each after a storage error."""

    retry_s: float = 2.0
    join_s: float = 15.0
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, name: str, job: Job) -> None:
        thread = threading.Thread(target=self._keep, args=(name, job), daemon=True, name=name)
        self._threads.append(thread)
        thread.start()

    def _keep(self, name: str, job: Job) -> None:
        while not self.stop.is_set():
            try:
                job(self.stop)
            except (EngageError, psycopg.Error) as exc:
                log.warning("%s: %s; restarting", name, exc)
                self.stop.wait(self.retry_s)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=self.join_s)
