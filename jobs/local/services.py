"""Resolve where each service is, starting the local ones when the settings say "local".

Called once at the entry point: the result is a settings object with concrete addresses, and
everything below it only connects.
"""

from __future__ import annotations

import logging

from jobs.local.kafka_broker import LocalKafka, LocalServiceError
from jobs.local.kafka_credentials import local_port, with_local_credentials
from jobs.local.postgres import start_embedded_postgres
from tapeflow.services.kafka import probe
from tapeflow.settings import Settings

log = logging.getLogger(__name__)


def local_broker(settings: Settings) -> LocalKafka | None:
    """The project-managed broker, when the bootstrap names this machine; else None. It is
    authenticated unless the settings ask for PLAINTEXT."""
    port = local_port(settings)
    if port is None:
        return None
    return LocalKafka(settings.home, port, settings.runtime.cache_dir,
                      secure=settings.kafka.security_protocol != "PLAINTEXT")


def ensure_kafka(settings: Settings, *, start: bool = True, timeout_s: float = 10.0) -> Settings:
    """Make sure a broker answers at the bootstrap address, starting the local one if
    allowed; returns the settings with the local broker's credentials when they apply."""
    broker = local_broker(settings)
    settings = with_local_credentials(settings)
    why = probe(settings.kafka_config(), 2.0 if broker is not None else timeout_s)
    if why is None:
        return settings
    if why != "no answer":
        raise LocalServiceError(f"Kafka at {settings.kafka.bootstrap}: {why}, as {_who(settings)}; "
                                "check the Kafka security settings (docs/security.md)")
    if broker is None or not start:
        raise LocalServiceError(
            f"no Kafka broker answers at {settings.kafka.bootstrap} "
            f"(checked for {timeout_s:.0f} s, as {_who(settings)}). Start it (`tapeflow dev "
            "kafka start` for the local one), or check TAPEFLOW_KAFKA_BOOTSTRAP and the Kafka "
            "security settings: an authenticated broker drops a client without credentials "
            "(docs/security.md)."
        )
    log.info("starting the local Kafka broker at %s", broker.bootstrap)
    broker.start()
    return with_local_credentials(settings)


def _who(settings: Settings) -> str:
    user = settings.kafka.sasl_username
    protocol = settings.kafka.security_protocol or "PLAINTEXT"
    return f"User:{user} over {protocol}" if user else f"an anonymous client over {protocol}"


def ensure_postgres(settings: Settings) -> Settings:
    """Settings with a concrete Postgres DSN: the configured one, or the embedded server's."""
    if settings.postgres.dsn is not None:
        return settings
    return settings.with_overrides(postgres_dsn=start_embedded_postgres(settings.home))


def resolve(settings: Settings, *, kafka: bool = True, start_kafka: bool = True) -> Settings:
    """Concrete addresses for every store (and a live broker when `kafka`)."""
    if kafka:
        settings = ensure_kafka(settings, start=start_kafka)
    return ensure_postgres(settings)
