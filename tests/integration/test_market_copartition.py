"""The market flow keys its state by partition, so md.trades and md.quotes must be
co-partitioned (the same partition count, both keyed by symbol): a symbol's trades and quotes
then sit on the same partition of both topics and meet in one state. Topics with different
partition counts are refused before the dataflow starts, in one line (exit code 2), by
`tapeflow run market` and `tapeflow run all` alike (after the flows' check of their Kafka
rights, which needs every topic they use to exist, and before any other service)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flows.all import AllFlow
from flows.market import kafka_source
from flows.spec import FlowRequest
from jobs.init import create_topics as create_all_topics
from schemas.catalogue import TOPIC_QUOTES, TOPIC_TRADES
from tapeflow.errors import UserError
from tapeflow.services.kafka import create_topics
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO


def test_topics_with_different_partition_counts_are_refused(settings: Settings) -> None:
    conf = settings.kafka_config()
    create_topics(conf, [settings.topic(TOPIC_TRADES)], 4)
    create_topics(conf, [settings.topic(TOPIC_QUOTES)], 2)
    create_all_topics(settings)  # the others, so the flows' access checks pass

    with pytest.raises(UserError, match="co-partitioned"):
        kafka_source(settings)
    with pytest.raises(UserError, match="co-partitioned"):  # before Postgres and ClickHouse
        AllFlow().build(settings.with_overrides(postgres_dsn=None), FlowRequest(batch=True))

    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update({**kafka_env(settings),
                "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
                "TAPEFLOW_HOME": str(settings.home),
                "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{settings.home / 'chdb'}"})
    if settings.postgres.dsn is not None:  # the session's: `run` would start its own
        env["TAPEFLOW_POSTGRES_DSN"] = settings.postgres.dsn.get_secret_value()
    done = subprocess.run([sys.executable, "-m", "tapeflow.cli", "run", "market", "--batch",
                           "--no-recovery", "--metrics-port", "0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"tapeflow: error: {settings.topic(TOPIC_TRADES)} has 4 partitions and "
        f"{settings.topic(TOPIC_QUOTES)} has 2: the market flow needs them co-partitioned "
        "(the same count, both keyed by symbol); recreate one with the other's count"], lines


def test_co_partitioned_topics_are_accepted(settings: Settings) -> None:
    conf = settings.kafka_config()
    create_topics(conf, [settings.topic(TOPIC_TRADES), settings.topic(TOPIC_QUOTES)], 3)
    assert kafka_source(settings, tail=False) is not None
