"""The composition root: settings in, wired adapters out.

Every CLI command (and later the HTTP app) opens an ``Engine`` and uses its
parts; nothing else decides which adapter serves which port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from consumers.pipeline import Pipeline
from consumers.processor import DEFAULT_BATCH, Processor
from consumers.relay import OutboxRelay
from engage.config import Settings
from engage.database import connect, migrate, resolve_dsn
from engage.errors import ConfigError
from events.adapters.postgres import PostgresDeadLetters, PostgresLog
from events.codec import TouchpointCodec
from events.publisher import Publisher
from projections.adapters.postgres import PostgresProfileStore
from rules import RuleSet, default_rules, load_rules


@dataclass
class Engine:
    settings: Settings
    dsn: str
    partitions: int
    log: PostgresLog
    store: PostgresProfileStore
    dead_letters: PostgresDeadLetters
    codec: TouchpointCodec = field(default_factory=TouchpointCodec)
    rules: RuleSet | None = None
    _relays: list[OutboxRelay] = field(default_factory=list)

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
        if settings.kafka_bootstrap:
            raise ConfigError(
                "ENGAGE_KAFKA_BOOTSTRAP is set, but Kafka mode is not built yet; "
                "unset it to use the embedded PostgreSQL log"
            )
        dsn = resolve_dsn(settings)
        partitions = migrate(dsn, settings.partitions)
        return cls(
            settings=settings,
            dsn=dsn,
            partitions=partitions,
            log=PostgresLog(dsn, partitions),
            store=PostgresProfileStore(dsn),
            dead_letters=PostgresDeadLetters(connect(dsn)),
            rules=ruleset,
        )

    def pipeline(self, *, with_rules: bool = True) -> Pipeline:
        return Pipeline(self.codec, rules=self.rules if with_rules else None)

    def relay(self) -> OutboxRelay:
        relay = OutboxRelay(self.dsn, self.log)
        self._relays.append(relay)
        return relay

    def processor(
        self,
        batch_size: int | None = None,
        *,
        with_rules: bool = True,
        partitions: list[int] | None = None,
        relay: bool = True,
    ) -> Processor:
        """``relay=False`` leaves fired triggers in the outbox (a replay's shadow rules)."""
        return Processor(
            self.log,
            self.store,
            self.pipeline(with_rules=with_rules),
            DEFAULT_BATCH if batch_size is None else batch_size,
            self.relay() if relay else None,
            partitions,
        )

    def publisher(self) -> Publisher:
        return Publisher(self.log, self.dead_letters, self.codec)

    def close(self) -> None:
        self.log.close()
        self.store.close()
        self.dead_letters.close()
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
