"""Shared set-up of the trading-flow benchmarks (bench/trading_flow.py, bench/alert_latency.py).

Not a test and not a library: the few steps both scripts need to run `tapeflow run trading` as
a subprocess against the local services: a broker, a Postgres schema with chosen risk limits,
an embedded ClickHouse directory, and a synthetic order flow with its marks.

The broker: bench/bench_kafka.py. Postgres: `TAPEFLOW_TEST_POSTGRES_DSN`,
else the worktree's embedded test server (.tapeflow/test, started or joined), in a fresh schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobs.init import create_topics, init_postgres
from jobs.local.postgres import start_embedded_postgres
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_MARKS
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.models import ExecutionReport, Trade
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parent.parent
MARK_EVERY_US = 1_000_000
_INIT_CHDB = """
import sys
from jobs.init import init_clickhouse
from tapeflow.settings import Settings
init_clickhouse(Settings(clickhouse_dsn=sys.argv[1], clickhouse_database=sys.argv[2]))
"""




def postgres_dsn() -> str:
    return os.environ.get("TAPEFLOW_TEST_POSTGRES_DSN") or start_embedded_postgres(
        REPO / ".tapeflow" / "test")


@dataclass(frozen=True)
class OrderFlow:
    """The input, in arrival order: (topic, key, value) plus the decoded reports and marks."""

    records: list[tuple[str, str | None, bytes]]
    reports: list[ExecutionReport]
    marks: list[Trade]
    arrivals: list[ExecutionReport | Trade]
    """Reports and marks interleaved as produced (garbage left out)."""


def order_flow(spec: MarketSpec, codec: Codec) -> OrderFlow:
    """The generator's executions (re-sends and garbage included) and marks: the first clean
    trade per symbol per second of event time, as the market flow publishes them."""
    market = generate_market(spec)
    labels = market.labels
    records: list[tuple[str, str | None, bytes]] = []
    reports: list[ExecutionReport] = []
    marks: list[Trade] = []
    arrivals: list[ExecutionReport | Trade] = []
    last_mark: dict[str, int] = {}
    for pos, (topic, key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, Garbage):
                records.append((topic, key, record.frame(codec.encode)))
            elif isinstance(record, ExecutionReport):
                records.append((topic, key, codec.encode(record)))
                reports.append(record)
                arrivals.append(record)
        elif (isinstance(record, Trade) and labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            records.append((TOPIC_MARKS, record.symbol, codec.encode(record)))
            marks.append(record)
            arrivals.append(record)
    return OrderFlow(records, reports, marks, arrivals)


def prepare(settings: Settings, dsn: str, limits_sql: list[str]) -> subprocess.Popen[bytes]:
    """Topics, the Postgres schema (migrated, then `limits_sql` run in it); returns the
    subprocess initialising the ClickHouse database (chDB: one process per directory)."""
    create_topics(settings)
    init_postgres(settings, dsn)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        for statement in limits_sql:
            conn.execute(statement)  # bench-only constants
        conn.commit()
    return subprocess.Popen([sys.executable, "-c", _INIT_CHDB, settings.clickhouse_url(),
                             settings.clickhouse.database], cwd=REPO)


def produce(settings: Settings, records: list[tuple[str, str | None, bytes]]) -> None:
    writer = KafkaWriter(settings.kafka_config())
    for topic, key, value in records:
        writer.send(settings.topic(topic), value, key=key)
    writer.flush()


def bench_settings(bootstrap: str, dsn: str, root: Path, partitions: int) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(home=root / "home", kafka_bootstrap=bootstrap, postgres_dsn=dsn,
                    postgres_schema=f"tf_bench_{tag}", clickhouse_dsn=f"chdb://{root / 'chdb'}",
                    clickhouse_database="tf_bench", kafka_topic_prefix=f"bench{tag}.",
                    kafka_partitions=partitions)


def flow_env(settings: Settings) -> dict[str, str]:
    """The environment of a `tapeflow run trading` subprocess for `settings`."""
    assert settings.postgres.dsn is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update({
        "TAPEFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "TAPEFLOW_CLICKHOUSE_DSN": settings.clickhouse_url(),
        "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
        "TAPEFLOW_POSTGRES_DSN": settings.postgres.dsn.get_secret_value(),
        "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "TAPEFLOW_HOME": str(settings.home),
    })
    return env
