"""The ports of the running processes: what they need of the composition root.

The processes (partition-parallel workers, the replay driver, the Faust
worker) sit below ``engage``, which wires the adapters; so they never import
``engage.runtime.Engine``. They are handed an object with this shape, or a
factory that opens one: a picklable callable, because partition-parallel
workers are spawned processes that open their own engine (``functools.partial``
of a classmethod with plain settings pickles by name).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from events.log import Log

if TYPE_CHECKING:
    from consumers.pipeline import Pipeline
    from consumers.processor import Processor


class ProcessingEngine(Protocol):
    """An open engine as the processes see it: the log, the pipeline, processors.

    ``engage.runtime.Engine`` is the one implementation; it also holds the
    read-side parts (stores, queries) the CLI and HTTP use.
    """

    dsn: str
    """The PostgreSQL database the projections live in (resolved: an embedded
    server's too), so a replay can open its build's connections there."""
    partitions: int

    @property
    def stream(self) -> Log:
        """The log touchpoints are published to and processed from."""
        ...

    def pipeline(self, *, with_rules: bool = True, publish: bool = False) -> Pipeline: ...

    def processor(
        self,
        batch_size: int | None = None,
        *,
        with_rules: bool = True,
        partitions: list[int] | None = None,
        relay: bool = True,
        live: bool = False,
    ) -> Processor: ...

    def reopener(self, rules: str | None) -> EngineFactory:
        """A picklable factory that opens an engine like this one (same
        database, same settings) with the rule file ``rules``, in another process."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> ProcessingEngine: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


EngineFactory = Callable[[], ProcessingEngine]
"""Opens a ``ProcessingEngine``; picklable when it must reach a spawned process."""
