"""A few Engines shared by the request threads."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from engage.config import Settings
from engage.errors import EngageError, StorageError
from engage.runtime import Engine
from rules import RuleSet

log = logging.getLogger("engage.http")


class EnginePool:
    """A few Engines, each used by one thread at a time.

    An engine's connections serve one request at a time, so a request borrows
    a whole engine. An engine whose request failed with a storage error is
    replaced by a fresh one, so a database restart costs the requests in
    flight, not the server.
    """

    def __init__(self, settings: Settings, size: int, rules: RuleSet | None) -> None:
        self._settings = settings
        self._rules = rules
        self._free: queue.Queue[Engine] = queue.Queue()
        self._all: list[Engine] = []
        self._lock = threading.Lock()
        for _ in range(size):
            engine = Engine.open(settings, rules)
            self._all.append(engine)
            self._free.put(engine)
        self.dsn = self._all[0].dsn

    @contextmanager
    def borrow(self) -> Iterator[Engine]:
        engine = self._free.get()
        try:
            yield engine
        except (StorageError, psycopg.Error):
            engine = self._renew(engine)
            raise
        finally:
            self._free.put(engine)

    def _renew(self, old: Engine) -> Engine:
        try:
            fresh = Engine.open(self._settings, self._rules)
        except EngageError as exc:  # still down: keep the old one, try again next time
            log.warning("reconnecting to the database failed: %s", exc)
            return old
        with self._lock:
            self._all[self._all.index(old)] = fresh
        with contextlib.suppress(Exception):
            old.close()
        return fresh

    def close(self) -> None:
        with self._lock:
            for engine in self._all:
                engine.close()
