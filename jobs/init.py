"""`tapeflow init`: check the Avro schemas, create the stores' schemas, the Kafka topics
(the desks' alert topics too) and the flows' and subscribers' ACLs. Idempotent.

The schema check comes first and changes nothing: this version must be able to read every
schema version producers may have written with (docs/schema-evolution.md), else init stops
with one line naming the subject, the version and the field, before any store is touched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.migrate import migrate_clickhouse, migrate_postgres
from schemas.catalogue import (
    RECORD_SUBJECTS,
    TOPIC_ALERTS,
    TOPIC_CANDLES,
    TOPIC_CASH,
    TOPIC_DLQ,
    TOPIC_EXECUTIONS,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    LocalCatalogue,
    RegistryCatalogue,
    current_schema,
)
from schemas.compat import IncompatibleSchemaError, check
from tapeflow.services import kafka
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.kafka_access import all_grants
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

ALL_TOPICS = (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS, TOPIC_ALERTS, TOPIC_DLQ, TOPIC_MARKS,
              TOPIC_CASH, TOPIC_CANDLES)


@dataclass
class InitReport:
    schemas: str = ""
    clickhouse_applied: list[str] = field(default_factory=list)
    postgres_applied: list[str] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)
    topics_existing: dict[str, int] = field(default_factory=dict)
    acls: int | None = None
    """ACLs granted; None: the broker has no authorizer, so none."""

    def lines(self) -> list[str]:
        out = [
            f"Schemas:    {self.schemas or 'not checked'}",
            f"ClickHouse: applied {', '.join(self.clickhouse_applied) or 'nothing (up to date)'}",
            f"Postgres:   applied {', '.join(self.postgres_applied) or 'nothing (up to date)'}",
            f"Kafka:      created {', '.join(self.topics_created) or 'no topics (all exist)'}",
        ]
        out += [f"            {t} exists with {n} partitions"
                for t, n in sorted(self.topics_existing.items())]
        if self.acls is not None:
            out.append(f"            {self.acls} ACLs granted to the flows and subscribers")
        elif self.topics_created or self.topics_existing:
            out.append("            no ACLs: the broker has no authorizer")
        return out


def init_clickhouse(settings: Settings) -> list[str]:
    url = settings.clickhouse_url()
    admin = open_clickhouse(url)
    # The name is bound as a server-side Identifier parameter, quoted by ClickHouse itself.
    admin.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}",
                  parameters={"db": settings.clickhouse.database})
    return migrate_clickhouse(open_clickhouse(url, settings.clickhouse.database))


def init_postgres(settings: Settings, dsn: str) -> list[str]:
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        return migrate_postgres(conn, settings.postgres.schema)


def topic_names(settings: Settings) -> list[str]:
    """Every topic of the deployment: `ALL_TOPICS` and each configured desk's alert topic."""
    return ([settings.topic(t) for t in ALL_TOPICS]
            + [settings.desk_topic(d) for d in sorted(settings.access.desks or {})])


def create_topics(settings: Settings, timeout_s: float = 30.0) -> tuple[list[str], dict[str, int]]:
    """Create the missing topics (`topic_names`) with `settings.kafka.partitions`; existing
    ones are left as they are."""
    return kafka.create_topics(settings.kafka_config(), topic_names(settings),
                               settings.kafka.partitions, timeout_s)


def grant_access(settings: Settings, timeout_s: float = 30.0) -> int | None:
    """Grant every principal its ACLs (`tapeflow.services.kafka_access`; docs/security.md);
    the number granted, or None when the broker has no authorizer."""
    return kafka.grant_acls(settings.kafka_config(), all_grants(settings), timeout_s)


def check_schemas(settings: Settings, registry: RegistryCatalogue | None = None) -> str:
    """Refuse (`IncompatibleSchemaError`) when this version's reader schemas cannot read a
    version the registry or the local catalogue holds for their subject; else a summary.

    `registry` overrides the one the settings name (tests share one mock registry)."""
    if registry is None and settings.schema_registry.url:
        auth = settings.schema_registry.basic_auth
        extra = {"basic.auth.user.info": auth.get_secret_value()} if auth else None
        registry = RegistryCatalogue.from_url(settings.schema_registry.url, extra)
    if registry is None:
        catalogue = LocalCatalogue.load(settings.schema_registry.catalogue)
        return f"compatible with {_check_all(catalogue.versions, 'catalogue')} catalogued versions"
    checked = _check_all(registry.versions, "registry")
    url = settings.schema_registry.url or "mock://"
    if not url.startswith("mock://"):  # a mock registry has no compatibility endpoint
        for name, subject in RECORD_SUBJECTS.items():
            if not registry.test_compatibility(subject, current_schema(name)):
                raise IncompatibleSchemaError(
                    f"the schema registry refuses schemas/avro/{name}.avsc for {subject} at "
                    "the subject's compatibility level")
    return f"compatible with {checked} registered versions"


def _check_all(versions: Callable[[str], dict[int, dict[str, Any]]], where: str) -> int:
    checked = 0
    for name, subject in RECORD_SUBJECTS.items():
        reader = current_schema(name)
        for schema_id, writer in versions(subject).items():
            check(reader, writer, f"schemas/avro/{name}.avsc cannot read {subject} schema id "
                                  f"{schema_id} ({where})")
            checked += 1
    return checked


def run_init(settings: Settings, postgres_dsn: str, *, kafka: bool = True) -> InitReport:
    report = InitReport()
    report.schemas = check_schemas(settings)
    report.clickhouse_applied = init_clickhouse(settings)
    report.postgres_applied = init_postgres(settings, postgres_dsn)
    if kafka:
        report.topics_created, report.topics_existing = create_topics(settings)
        report.acls = grant_access(settings)
    return report
