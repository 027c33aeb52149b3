"""Shared fixtures: the real services, started once per test session.

- Kafka: the project's own local broker (jobs/local/kafka_broker.py) on a test port,
  authenticated as the local broker is by default (SASL/SCRAM, ACLs), reused when it already
  answers there with this checkout's test credentials; a broker on that port that does not
  (an earlier version's unauthenticated one, another checkout's) stops the session with one
  line rather than being reused or stopped. `TAPEFLOW_TEST_KAFKA_BOOTSTRAP` points at any
  other broker (with the `TAPEFLOW_KAFKA_*` security settings of the environment). Each test
  gets its own topic prefix, so tests never see each other's records, and the flows'
  principals their ACLs on that prefix (`tapeflow init`'s grants): the tests' own clients
  are the admin principal, every flow runs as its own.
- Postgres: embedded, one fresh schema per session (`TAPEFLOW_TEST_POSTGRES_DSN` for a server).
- ClickHouse: the embedded chDB engine in a temporary directory, one fresh database per session.
"""

from __future__ import annotations

import os
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from tapeflow.settings import Settings
from tests.support.locations import TEST_HOME, TEST_KAFKA_HOME, TEST_KAFKA_PORT

if TYPE_CHECKING:
    from jobs.local.kafka_broker import LocalKafka

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka | None]:
    """The session's authenticated local broker; None with `TAPEFLOW_TEST_KAFKA_BOOTSTRAP`."""
    if os.environ.get("TAPEFLOW_TEST_KAFKA_BOOTSTRAP"):
        yield None
        return
    from jobs.local.kafka_broker import LocalKafka

    broker = LocalKafka(TEST_KAFKA_HOME, TEST_KAFKA_PORT, Settings().runtime.cache_dir)
    status = broker.status()
    started_here = not status.answering
    if started_here and not status.running and _listening(TEST_KAFKA_PORT):
        pytest.exit(f"something listens on 127.0.0.1:{TEST_KAFKA_PORT} but does not answer "
                    "with this checkout's test credentials (an unauthenticated broker of an "
                    "earlier version, or another checkout's); stop it, or set "
                    "TAPEFLOW_TEST_KAFKA_PORT to a free pair of ports", returncode=3)
    broker.start()
    yield broker
    if started_here:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka | None) -> str:
    if kafka_broker is None:
        return os.environ["TAPEFLOW_TEST_KAFKA_BOOTSTRAP"]
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_auth(kafka_broker: LocalKafka | None) -> dict[str, Any]:
    """Settings keywords for the test broker's principals: the tests' own clients as the
    admin, each flow as its own principal (an external broker: the environment's)."""
    if kafka_broker is None:
        return {}
    from jobs.local.kafka_credentials import ADMIN_USER, MECHANISM, ROLE_USERS

    local = kafka_broker.credentials
    return {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": ADMIN_USER,
            "kafka_sasl_password": SecretStr(local.password(ADMIN_USER)),
            **{f"kafka_{role}_username": user for role, user in ROLE_USERS.items()},
            **{f"kafka_{role}_password": SecretStr(local.password(user))
               for role, user in ROLE_USERS.items()}}


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
def settings(kafka_bootstrap: str, kafka_auth: dict[str, Any], postgres_dsn: str,
             clickhouse_url: str, session_id: str, tmp_path: Path) -> Settings:
    """Settings for one test: shared services, this session's database, this test's topics,
    and the flows' ACLs on them (as `tapeflow init` grants them)."""
    from jobs.init import grant_access

    settings = Settings(
        home=tmp_path / "home",
        kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn,
        clickhouse_dsn=clickhouse_url,
        clickhouse_database=f"tf_{session_id}",
        postgres_schema=f"tf_{session_id}",
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        kafka_partitions=3,
        **kafka_auth,
    )
    grant_access(settings)
    return settings
