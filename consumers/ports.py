"""The ports of the running processes: what they need of the composition root,
and the webhook store.

The processes (partition-parallel workers, the replay driver, the Faust
worker) sit below ``engage``, which wires the adapters; so they never import
``engage.runtime.Engine``. They are handed an object with this shape, or a
factory that opens one: a picklable callable, because partition-parallel
workers are spawned processes that open their own engine (``functools.partial``
of a classmethod with plain settings pickles by name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    url: str
    kind: str | None
    rule_id: str | None
    secret: str
    created_at: str
    removed_at: str | None
    allow_private: bool = False
    """Added with ``--allow-private``: private and loopback targets allowed
    (``consumers.webhook_targets``)."""

    def matches(self, kind: str, rule_id: str) -> bool:
        return (self.kind is None or self.kind == kind) and (
            self.rule_id is None or self.rule_id == rule_id
        )


@dataclass(frozen=True, slots=True)
class QueueItem:
    subscription_id: int
    trigger_id: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    subscription_id: int
    trigger_id: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: str


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one delivery attempt went: ``outcome`` delivered or dead ends the
    delivery, anything else retries it in ``retry_in`` seconds."""

    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_in: float | None = None


WebhookRead = Callable[[dict[int, int]], tuple[Sequence[tuple[str, int, str]], Mapping[int, int]]]
"""``read(positions) -> (items, new_positions)``: a subscription's new triggers
past its cursor, as (trigger_id, fired_at, body), and where the cursor moves."""


class WebhookStore(Protocol):
    """Webhook subscriptions, their cursors over the triggers stream, the
    delivery queue with its retry state, and the attempt log.

    Adapters: PostgreSQL (``consumers.webhook_store``), memory
    (``consumers.adapters.memory``). ``shared_across_processes`` is the one
    declared difference: memory state and locks live in one process.
    """

    shared_across_processes: bool

    def add(
        self,
        url: str,
        kind: str | None,
        rule_id: str | None,
        start: Mapping[int, int],
        *,
        allow_private: bool = False,
    ) -> Subscription:
        """Subscribe ``url`` (the target policy applies); its cursor starts at ``start``."""
        ...

    def subscriptions(self, *, include_removed: bool = False) -> list[Subscription]: ...

    def get(self, sub_id: int) -> Subscription | None: ...

    def remove(self, sub_id: int) -> None:
        """Raises ``NotFound`` for no active subscription of that id."""
        ...

    def enqueue(self, sub_id: int, read: WebhookRead) -> int:
        """Atomically: read past the cursor, queue the items (a trigger already
        queued is ignored), advance the cursor; returns the items read."""
        ...

    def due(self, sub_id: int, limit: int) -> list[QueueItem]:
        """Pending deliveries whose time has come, by (due time, fired_at, trigger_id)."""
        ...

    def next_due_in(self, sub_id: int) -> float | None:
        """Seconds until the next pending delivery (0 if one is due), or None."""
        ...

    def record(self, item: QueueItem, result: AttemptResult) -> None:
        """Log one attempt and move the item on as ``result.outcome`` says."""
        ...

    def attempts(self, sub_id: int | None = None, limit: int = 50) -> list[Attempt]:
        """The newest ``limit`` attempts, oldest first."""
        ...

    def counts(self) -> dict[tuple[int, str], int]:
        """(subscription_id, state) -> number of queued triggers."""
        ...

    def dead(self, sub_id: int | None = None, limit: int = 100) -> list[tuple[int, str, int, str]]:
        """(subscription_id, trigger_id, attempts, last_error) of given-up deliveries."""
        ...

    def retry_dead(self, sub_id: int | None = None) -> int:
        """Queue given-up deliveries again, from attempt 0; returns how many."""
        ...

    def try_lock(self, sub_id: int) -> bool:
        """One deliverer per subscription: False while another handle holds it."""
        ...

    def unlock(self, sub_id: int) -> None: ...

    def close(self) -> None: ...
