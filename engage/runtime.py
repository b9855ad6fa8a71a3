"""The composition root: settings in, wired adapters out.

Every CLI command (and later the HTTP app) opens an ``Engine`` and uses its
parts; nothing else decides which adapter serves which port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from consumers.dlq_relay import DeadLetterRelay
from consumers.group_member import GroupMember
from consumers.pipeline import DEFAULT_CONSUMER, Pipeline
from consumers.ports import EngineFactory
from consumers.processor import DEFAULT_BATCH, Processor
from consumers.relay import OutboxRelay
from engage.config import Settings
from engage.database import connect, migrate, resolve_dsn
from engage.erasure import resume_erasures
from engage.errors import EngageError
from events.adapters.postgres import PostgresDeadLetters, PostgresLog
from events.adapters.postgres_keys import PostgresKeyRing
from events.codec import TouchpointCodec
from events.dead_letters import DeadLetterStore
from events.limits import TimeWindow
from events.log import TOUCHPOINTS
from events.master_key import MasterKeySource
from events.model import Micros
from events.ports import Entry
from events.publisher import Publisher
from projections.adapters.postgres import PostgresProjectionStore
from projections.adapters.postgres_identity import PostgresIdentityStore
from projections.identity_router import IdentityRouter
from projections.person_history import PersonHistory, identity_fields
from projections.ports import ProjectionStore
from projections.queries import customer_view
from rules import RuleSet, default_rules, load_rules

if TYPE_CHECKING:  # kafka-python loads only in Kafka mode: it slows every CLI start
    from events.adapters.kafka import KafkaLog


@dataclass
class Engine:
    """The composition root: the adapters every command and server uses.

    One thread at a time: the adapters' connections (the keyring's, the
    identity store's) are not shared safely between threads that publish or
    read at once. A threaded caller opens one engine per thread, as the HTTP
    server keeps a pool of them (``engage.http.pool``)."""

    settings: Settings
    dsn: str
    partitions: int
    log: PostgresLog
    store: ProjectionStore
    dead_letters: DeadLetterStore
    keys: PostgresKeyRing
    """Person keys (``events.keyring``): personal fields are sealed on publish
    and opened by the pipeline and wherever a person's data is shown."""
    identity: PostgresIdentityStore
    """The persons events are routed to (``projections.identity_router``)."""
    codec: TouchpointCodec = field(default_factory=TouchpointCodec)
    rules: RuleSet | None = None
    kafka: KafkaLog | None = None
    """Set in Kafka mode: the log that publishing, processing and the relay use."""
    _relays: list[OutboxRelay | DeadLetterRelay] = field(default_factory=list)

    @classmethod
    def open(
        cls, settings: Settings | None = None, rules: str | Path | RuleSet | None = None
    ) -> Engine:
        """Open the engine; ``rules`` is a rule file, a loaded RuleSet, or None for
        the shipped default pack. A bad rule file fails here, before any work."""
        if isinstance(rules, RuleSet):
            ruleset = rules
        elif rules is None:
            ruleset = default_rules()
        else:
            ruleset = load_rules(rules)
        settings = Settings.from_env() if settings is None else settings
        dsn = resolve_dsn(settings)
        partitions = migrate(dsn, settings.partitions)
        kafka = None
        if settings.kafka_bootstrap:
            from events.adapters.kafka import KafkaLog, check_partitions

            kafka = KafkaLog(
                settings.kafka_bootstrap, partitions, prefix=settings.kafka_topic_prefix
            )
            check_partitions(kafka.partitions, partitions, settings.kafka_topic_prefix)
        keys = PostgresKeyRing(dsn, MasterKeySource(settings.master_key, settings.home))
        engine = cls(
            kafka=kafka,
            settings=settings,
            dsn=dsn,
            partitions=partitions,
            log=PostgresLog(dsn, partitions),
            store=PostgresProjectionStore(dsn),
            dead_letters=PostgresDeadLetters(connect(dsn), keys),
            keys=keys,
            identity=PostgresIdentityStore(
                dsn, same_database=kafka is None, pseudonym=keys.pseudonym
            ),
            rules=ruleset,
        )
        try:
            resume_erasures(engine)
        except EngageError as exc:  # the command goes on; the next one tries again
            logging.getLogger("engage.erasure").warning("an erasure is unfinished: %s", exc)
        return engine

    @property
    def stream(self) -> PostgresLog | KafkaLog:
        """The log events are published to and processed from: Kafka in Kafka
        mode, else the PostgreSQL log. Both also answer per-customer reads
        (``projections.queries.CustomerHistory``: ``--as-of``, timelines);
        ``self.log`` stays the PostgreSQL log for PostgreSQL-only queries."""
        return self.kafka if self.kafka is not None else self.log

    def pipeline(self, *, with_rules: bool = True, publish: bool = False) -> Pipeline:
        """``publish``: triggers go onto the PostgreSQL triggers stream in the
        batch transaction (not in Kafka mode, whose stream is a topic: the relay
        moves them there)."""
        return Pipeline(
            self.codec,
            rules=self.rules if with_rules else None,
            drop_repeated_ids=not self.stream.refuses_repeated_ids,
            publish_to=self.partitions if publish and self.kafka is None else None,
            keys=self.keys,
            identity=self.identity,
            history=self.stream,
        )

    def relay(self) -> OutboxRelay:
        relay = OutboxRelay(self.dsn, self.stream)
        self._relays.append(relay)
        return relay

    def dlq_relay(self) -> DeadLetterRelay | None:
        """Kafka mode only: dead letters are copied to the dlq topic."""
        if self.kafka is None:
            return None
        relay = DeadLetterRelay(self.dsn, self.kafka)
        self._relays.append(relay)
        return relay

    def group_member(self, *, with_rules: bool = True, now: Micros | None = None) -> GroupMember:
        """What a Faust agent hands its batches to (``consumers.group_member``)."""
        return GroupMember(
            self.store,
            self.pipeline(with_rules=with_rules),
            self.relay(),
            self.dlq_relay(),
            now,
            log=self.stream,
            wall=self.wall,
            clock_step=self.settings.clock_step,
        )

    def reopener(self, rules: str | None) -> EngineFactory:
        """Opens this engine's like in a spawned worker: the same settings with
        the database resolved (an embedded server's URL), and the rule file
        ``rules`` (None: the default pack), loaded there by path."""
        settings = replace(self.settings, database_url=self.dsn)
        return partial(Engine.open, settings, rules=rules)

    def wall(self) -> Micros:
        """The wall time minus the allowed lateness: a live clock's floor."""
        return wall_micros() - self.settings.lateness

    def processor(
        self,
        batch_size: int | None = None,
        *,
        with_rules: bool = True,
        partitions: list[int] | None = None,
        relay: bool = True,
        live: bool = False,
    ) -> Processor:
        """``relay=False`` leaves fired triggers in the outbox (a replay's shadow rules).
        ``live=True`` keeps the clock at least at the wall time minus the allowed
        lateness, by clock records on quiet partitions (``consumers.processor``)."""
        return Processor(
            self.stream,
            self.store,
            self.pipeline(with_rules=with_rules, publish=relay),
            DEFAULT_BATCH if batch_size is None else batch_size,
            self.relay() if relay else None,
            partitions,
            wall=self.wall if live else None,
            clock_step=self.settings.clock_step,
        )

    def publisher(self, now: Micros | None = None) -> Publisher:
        """Ingest refuses an ``occurred_at`` later than ``now`` (the wall clock
        unless given, as ``--now`` does) plus ``ENGAGE_MAX_FUTURE``: one event
        dated in year 9999 would otherwise move everyone's clock there."""
        at = wall_micros() if now is None else now
        window = TimeWindow.around(at, self.settings.max_future)
        router = IdentityRouter(self.identity, self.partitions)
        return Publisher(self.stream, self.dead_letters, self.codec, window, self.keys, router)

    @property
    def history(self) -> PersonHistory:
        """The log read by person: any identifier names the person, and the
        answer covers every key its events were appended under."""
        return PersonHistory(self.stream, self.identity)

    def customer_view(self, customer_id: str, at: Micros | None = None) -> dict[str, Any] | None:
        """The customer-360 JSON now, or as of ``at`` (folded from the log), with
        personal fields opened by the person's key: what ``engage profile``,
        ``GET /v1/customers/{id}`` and the access export all show. Any
        identifier of a person names it; the view gains ``person_id``,
        ``identifiers`` and ``merged_from``."""
        history = self.history
        person_id, person = history.person_id(customer_id)
        view = customer_view(
            history, self.store, self.codec, person_id, DEFAULT_CONSUMER, at, keys=self.keys
        )
        return None if view is None else {**view, **identity_fields(person, person_id)}

    def unlink(self, name: str, identifier: str, reason: str) -> list[Entry]:
        """``engage identity unlink``: the records appended (``IdentityRouter.unlink``),
        dated at the processor's clock (the wall time before it has one)."""
        at = self.store.clock(DEFAULT_CONSUMER) or wall_micros()
        router = IdentityRouter(self.identity, self.partitions)
        stream = self.stream
        return router.unlink(name, identifier, reason, at, partial(stream.append, TOUCHPOINTS))

    @contextmanager
    def publishing(self, now: Micros | None = None) -> Iterator[Publisher]:
        """The one publish step of the CLI and the HTTP API: a publisher, and
        after it, in Kafka mode, the rejected input relayed to the dlq topic
        (so ``engage publish`` and ``POST /v1/events`` treat bad input alike)."""
        yield self.publisher(now)
        relay = self.dlq_relay()
        if relay is not None:
            relay.drain()

    def close(self) -> None:
        self.log.close()
        if self.kafka is not None:
            self.kafka.close()
        self.store.close()
        self.dead_letters.close()
        self.keys.close()
        self.identity.close()
        for relay in self._relays:
            relay.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wall_micros() -> Micros:
    """The wall clock, read here in the composition root and nowhere in the core."""
    return time.time_ns() // 1_000
