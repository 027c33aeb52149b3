"""Fault: Postgres unreachable for 20 s while the trading flow runs (docs/faults.md).

The flow (`tapeflow run trading`, a subprocess, tailing, recovery on) reaches Postgres through a
TCP proxy the test owns (tests/support/faults.py). After the first half of an order flow is
written, the proxy is cut (live connections reset, new ones refused) and the second half is
produced; 20 s later the proxy listens again.

What it proves:
- the flow neither dies nor skips: it is alive through the outage, and its log has a retry line
  per attempt naming the store, the rows, the error and the next attempt;
- it does not advance past what it has not written: the offsets it commits after each snapshot
  do not move during the outage, although the second half is waiting on the topic;
- it catches up: the Postgres state (every column the reports decide) equals an undisturbed
  batch run of the same topics, and a SIGTERM afterwards still exits 0.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from schemas.catalogue import TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from tapeflow.services.dsn import redact
from tapeflow.settings import Settings
from tests.support.faults import (
    OUTAGE_S,
    FlowProcess,
    TcpProxy,
    committed,
    init_stores,
    logged_exec_ids,
    order_flow,
    pg_state,
    reference_run,
    wait_until,
)


def test_postgres_outage_blocks_the_flow_then_it_catches_up(settings: Settings,
                                                             tmp_path: Path) -> None:
    root = tmp_path
    tag = uuid.uuid4().hex[:8]
    flow_settings = settings.with_overrides(postgres_schema=f"tf_pgf_{tag}",
                                            clickhouse_database="tapeflow")
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    chdb_dir = root / "chdb"
    init_stores(flow_settings, dsn, chdb_dir, topics=True)
    orders = order_flow(Codec(LocalCatalogue.load()))
    first, both = (len(ids) for ids in orders.exec_ids)
    orders.send(flow_settings, 0)

    proxy = TcpProxy.for_postgres(dsn)
    flow = FlowProcess(flow_settings, proxy.dsn(dsn), chdb_dir, root / "flow.log")
    try:
        schema = flow_settings.postgres.schema
        wait_until("the first half in Postgres", lambda: logged_exec_ids(dsn, schema) == first,
                   120)
        proxy.cut()
        cut_at = time.monotonic()
        orders.send(flow_settings, 1)
        time.sleep(5)  # the flow has read the second half and is retrying its write
        during = committed(flow_settings, TOPIC_EXECUTIONS, flow_settings.kafka.partitions)
        assert logged_exec_ids(dsn, schema) == first
        time.sleep(max(0.0, cut_at + OUTAGE_S - time.monotonic()))
        assert flow.alive(), flow.text()[-3000:]
        assert committed(flow_settings, TOPIC_EXECUTIONS, flow_settings.kafka.partitions) == during
        proxy.restore()
        caught_up = wait_until("the second half in Postgres",
                               lambda: logged_exec_ids(dsn, schema) == both, 60)
        time.sleep(3)  # the last state changes of the same epoch
        assert flow.stop() == 0, flow.text()[-3000:]
    finally:
        if flow.alive():
            flow.stop()
        proxy.close()
    log = flow.text()
    retries = [line for line in log.splitlines() if "write of" in line and "failed" in line]
    assert retries, log[-3000:]
    # The store is named by where it is, host, port and database only (docs/security.md).
    where = f"Postgres {redact(proxy.dsn(dsn))} (schema {schema})"
    assert where.startswith("Postgres 127.0.0.1:")
    assert where.endswith(f"/postgres (schema {schema})")
    assert all(where in line
               and "gives up 600 s after the first failure" in line
               and "next attempt in" in line for line in retries), retries[:3]
    assert len(retries) >= 4, retries  # exponential backoff over 20 s: several tries
    print(f"caught up {caught_up:.1f} s after the outage; {len(retries)} retries logged")

    reference = settings.with_overrides(postgres_schema=f"tf_pgr_{tag}",
                                        clickhouse_database=f"tf_pgr_{tag}")
    assert pg_state(dsn, schema) == reference_run(reference, dsn)
