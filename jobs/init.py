"""`tapeflow init`: create the stores' schemas and the Kafka topics. Idempotent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic

from jobs.migrate import migrate_clickhouse, migrate_postgres
from schemas.catalogue import (
    TOPIC_ALERTS,
    TOPIC_DLQ,
    TOPIC_EXECUTIONS,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
)
from sinks.stores import connect_postgres, open_clickhouse
from tapeflow.config import Settings

ALL_TOPICS = (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS, TOPIC_ALERTS, TOPIC_DLQ, TOPIC_MARKS)


@dataclass
class InitReport:
    clickhouse_applied: list[str] = field(default_factory=list)
    postgres_applied: list[str] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)
    topics_existing: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"ClickHouse: applied {', '.join(self.clickhouse_applied) or 'nothing (up to date)'}",
            f"Postgres:   applied {', '.join(self.postgres_applied) or 'nothing (up to date)'}",
            f"Kafka:      created {', '.join(self.topics_created) or 'no topics (all exist)'}",
        ]
        out += [f"            {t} exists with {n} partitions"
                for t, n in sorted(self.topics_existing.items())]
        return out


def init_clickhouse(settings: Settings) -> list[str]:
    url = settings.clickhouse_url()
    admin = open_clickhouse(url)
    admin.command(f"CREATE DATABASE IF NOT EXISTS `{settings.clickhouse_database}`")
    return migrate_clickhouse(open_clickhouse(url, settings.clickhouse_database))


def init_postgres(settings: Settings, dsn: str) -> list[str]:
    with connect_postgres(dsn, settings.postgres_schema) as conn:
        return migrate_postgres(conn, settings.postgres_schema)


def create_topics(settings: Settings, timeout_s: float = 30.0) -> tuple[list[str], dict[str, int]]:
    """Create missing topics with `settings.partitions`; existing ones are left as they are."""
    admin = AdminClient(settings.kafka_config())
    meta = admin.list_topics(timeout=timeout_s)
    wanted = [settings.topic(t) for t in ALL_TOPICS]
    existing = {t: len(meta.topics[t].partitions) for t in wanted if t in meta.topics}
    missing = [NewTopic(t, num_partitions=settings.partitions, replication_factor=1)
               for t in wanted if t not in existing]
    created = []
    if missing:
        for topic, future in admin.create_topics(missing, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                created.append(topic)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
                existing[topic] = settings.partitions
    _wait_for_leaders(admin, created, timeout_s)
    return created, existing


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    """Return once every partition of `topics` has a leader: a new topic is not usable before."""
    deadline = time.monotonic() + timeout_s
    while topics:
        meta = admin.list_topics(timeout=timeout_s)
        ready = all(
            t in meta.topics and meta.topics[t].error is None
            and all(p.leader >= 0 for p in meta.topics[t].partitions.values())
            for t in topics
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {', '.join(topics)} have no partition leaders yet")
        time.sleep(0.1)


def run_init(settings: Settings, postgres_dsn: str, *, kafka: bool = True) -> InitReport:
    report = InitReport()
    report.clickhouse_applied = init_clickhouse(settings)
    report.postgres_applied = init_postgres(settings, postgres_dsn)
    if kafka:
        report.topics_created, report.topics_existing = create_topics(settings)
    return report
