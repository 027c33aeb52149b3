"""Fault: the Kafka broker stopped for 20 s while the trading flow runs (docs/faults.md).

The test starts its own broker (jobs/local/kafka_broker.py) under its tmp directory, on the
session's test port + 2 (controller + 3), never the session's shared broker. The flow
(`tapeflow run trading`, a subprocess, tailing, recovery on) reads and writes it; after the
first half of an order flow is in Postgres, the broker is stopped, started again 20 s later, and
the second half is produced.

What it proves:
- the flow waits: it is alive through the outage and after it (consumer and producer reconnect
  by themselves; the alert and dead-letter producers keep their records queued);
- it resumes: the second half reaches Postgres, and a SIGTERM afterwards exits 0;
- nothing is lost or doubled: the Postgres state equals an undisturbed batch run of the same
  topics, and risk.alerts holds each of the run's alerts exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from jobs.local.kafka_broker import LocalKafka
from jobs.local.kafka_credentials import ADMIN_USER, ROLE_USERS
from schemas.catalogue import TOPIC_ALERTS, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.topic_reader import read_all
from tapeflow.settings import Settings
from tests.support.faults import (
    OUTAGE_S,
    FlowProcess,
    init_stores,
    logged_exec_ids,
    order_flow,
    pg_rows,
    pg_state,
    reference_run,
    wait_until,
)
from tests.support.locations import TEST_KAFKA_PORT


@pytest.mark.slow  # 55-70 s: two broker starts, a 20 s outage, a reference run
def test_kafka_broker_outage_the_flow_waits_and_resumes(settings: Settings,
                                                        tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "broker", TEST_KAFKA_PORT + 2)
    assert not broker.status().answering, f"something already listens at {broker.bootstrap}"
    broker.start()
    flow: FlowProcess | None = None
    try:
        tag = uuid.uuid4().hex[:8]
        own = {f"kafka_{name}_password": broker.credentials.password(user) for name, user in
               (("sasl", ADMIN_USER), *ROLE_USERS.items())}  # this broker's principals
        flow_settings = settings.with_overrides(kafka_bootstrap=broker.bootstrap,
                                                postgres_schema=f"tf_kf_{tag}",
                                                clickhouse_database="tapeflow", **own)
        assert settings.postgres.dsn is not None
        dsn = settings.postgres.dsn.get_secret_value()
        schema = flow_settings.postgres.schema
        chdb_dir = tmp_path / "chdb"
        init_stores(flow_settings, dsn, chdb_dir, topics=True)
        codec = Codec(LocalCatalogue.load())
        orders = order_flow(codec)
        first, both = (len(ids) for ids in orders.exec_ids)
        orders.send(flow_settings, 0)

        flow = FlowProcess(flow_settings, dsn, chdb_dir, tmp_path / "flow.log")
        wait_until("the first half in Postgres", lambda: logged_exec_ids(dsn, schema) == first,
                   120)
        stopped_at = time.monotonic()
        broker.stop()
        time.sleep(max(0.0, stopped_at + OUTAGE_S - time.monotonic()))
        assert flow.alive(), flow.text()[-3000:]
        broker.start()
        restarted = time.monotonic()
        orders.send(flow_settings, 1)
        resumed = wait_until("the second half in Postgres",
                             lambda: logged_exec_ids(dsn, schema) == both, 120)
        time.sleep(3)  # the last state changes of the same epoch
        assert flow.alive(), flow.text()[-3000:]
        assert flow.stop() == 0, flow.text()[-3000:]
        print(f"outage {restarted - stopped_at:.1f} s; second half written {resumed:.1f} s "
              "after the broker answered again")

        alerts = [codec.decode(m.value(), expect="RiskAlert").alert_id
                  for m in read_all(flow_settings.kafka_config(),
                                    flow_settings.topic(TOPIC_ALERTS))]
        assert alerts and max(Counter(alerts).values()) == 1
        assert sorted(alerts) == [row[0] for row in pg_rows(dsn, schema, "alerts")]

        reference = flow_settings.with_overrides(postgres_schema=f"tf_kr_{tag}",
                                                 clickhouse_database=f"tf_kr_{tag}")
        reference = reference.with_overrides(clickhouse_dsn=settings.clickhouse_url())
        assert pg_state(dsn, schema) == reference_run(reference, dsn)
    finally:
        if flow is not None and flow.alive():
            flow.stop()
        broker.stop()
