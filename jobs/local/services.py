"""Resolve where each service is, starting the local ones when the settings say "local".

Called once at the entry point: the result is a settings object with concrete addresses, and
everything below it only connects.
"""

from __future__ import annotations

import logging

from jobs.local.kafka_broker import LocalKafka, LocalServiceError
from jobs.local.postgres import start_embedded_postgres
from tapeflow.services.kafka import broker_answers
from tapeflow.settings import LOCAL_KAFKA_PORT, Settings

log = logging.getLogger(__name__)
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def local_broker(settings: Settings) -> LocalKafka | None:
    """The project-managed broker, when the bootstrap names this machine; else None."""
    host, _, port = settings.kafka.bootstrap.partition(":")
    if "," in settings.kafka.bootstrap or host not in LOCAL_HOSTS:
        return None
    return LocalKafka(settings.home, int(port or LOCAL_KAFKA_PORT), settings.runtime.cache_dir)


def ensure_kafka(settings: Settings, *, start: bool = True, timeout_s: float = 10.0) -> None:
    """Make sure a broker answers at the bootstrap address, starting the local one if allowed."""
    broker = local_broker(settings)
    if broker_answers(settings.kafka_config(), 2.0 if broker is not None else timeout_s):
        return
    if broker is None or not start:
        raise LocalServiceError(
            f"no Kafka broker answers at {settings.kafka.bootstrap} "
            f"(checked for {timeout_s:.0f} s). Start it (`tapeflow dev kafka start` for the "
            "local one) or set TAPEFLOW_KAFKA_BOOTSTRAP."
        )
    log.info("starting the local Kafka broker at %s", broker.bootstrap)
    broker.start()


def ensure_postgres(settings: Settings) -> Settings:
    """Settings with a concrete Postgres DSN: the configured one, or the embedded server's."""
    if settings.postgres.dsn is not None:
        return settings
    return settings.with_overrides(postgres_dsn=start_embedded_postgres(settings.home))


def resolve(settings: Settings, *, kafka: bool = True, start_kafka: bool = True) -> Settings:
    """Concrete addresses for every store (and a live broker when `kafka`)."""
    if kafka:
        ensure_kafka(settings, start=start_kafka)
    return ensure_postgres(settings)
