"""Shared fixtures: the real services, started once per test session.

- Kafka: the project's own local broker (jobs/local/kafka_broker.py) on a test port, reused
  when one already answers there (`TAPEFLOW_TEST_KAFKA_BOOTSTRAP` points at any other broker);
  each test gets its own topic prefix, so tests never see each other's records.
- Postgres: embedded, one fresh schema per session (`TAPEFLOW_TEST_POSTGRES_DSN` for a server).
- ClickHouse: the embedded chDB engine in a temporary directory, one fresh database per session.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapeflow.settings import Settings
from tests.support.locations import TEST_HOME, TEST_KAFKA_PORT

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("TAPEFLOW_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from jobs.local.kafka_broker import LocalKafka

    broker = LocalKafka(TEST_HOME, TEST_KAFKA_PORT, Settings().runtime.cache_dir)
    started_here = not broker.status().answering
    broker.start()
    yield broker.bootstrap
    if started_here:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    external = os.environ.get("TAPEFLOW_TEST_POSTGRES_DSN")
    if external:
        return external
    from jobs.local.postgres import start_embedded_postgres

    return start_embedded_postgres(TEST_HOME)


@pytest.fixture(scope="session")
def session_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("TAPEFLOW_TEST_CLICKHOUSE_DSN") or (
        f"chdb://{tmp_path_factory.mktemp('chdb')}"
    )


@pytest.fixture
def settings(kafka_bootstrap: str, postgres_dsn: str, clickhouse_url: str,
             session_id: str, tmp_path: Path) -> Settings:
    """Settings for one test: shared services, this session's database, this test's topics."""
    return Settings(
        home=tmp_path / "home",
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn,
        clickhouse_dsn=clickhouse_url,
        clickhouse_database=f"tf_{session_id}",
        postgres_schema=f"tf_{session_id}",
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        kafka_partitions=3,
    )
