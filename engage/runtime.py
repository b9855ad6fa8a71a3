"""The composition root: settings in, wired adapters out.

Every CLI command (and later the HTTP app) opens an ``Engine`` and uses its
parts; nothing else decides which adapter serves which port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType

from consumers.pipeline import Pipeline
from consumers.processor import Processor
from engage.config import Settings
from engage.database import connect, migrate, resolve_dsn
from engage.errors import ConfigError
from events.adapters.postgres import PostgresDeadLetters, PostgresLog
from events.codec import TouchpointCodec
from events.publisher import Publisher
from projections.adapters.postgres import PostgresProfileStore


@dataclass
class Engine:
    settings: Settings
    dsn: str
    partitions: int
    log: PostgresLog
    store: PostgresProfileStore
    dead_letters: PostgresDeadLetters
    codec: TouchpointCodec = field(default_factory=TouchpointCodec)

    @classmethod
    def open(cls, settings: Settings | None = None) -> Engine:
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
        )

    def pipeline(self) -> Pipeline:
        return Pipeline(self.codec)

    def processor(self, batch_size: int | None = None) -> Processor:
        if batch_size is None:
            return Processor(self.log, self.store, self.pipeline())
        return Processor(self.log, self.store, self.pipeline(), batch_size)

    def publisher(self) -> Publisher:
        return Publisher(self.log, self.dead_letters, self.codec)

    def close(self) -> None:
        self.log.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
