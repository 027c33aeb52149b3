"""Execution reports that break the order state machine, end to end: real Kafka, Postgres and
chDB, the trading flow run by Bytewax in batch mode.

tests/integration/test_trading_flow.py covers a fill for an unknown order among a synthetic
order flow; this test covers the other ways a report breaks the FIX lifecycle, table-driven,
each next to a valid history of its own order:
- a fill after the order was canceled (a terminal order moves no more);
- a PARTIAL_FILL that completes the order (the OMS must say FILL);
- a fill for an order never acknowledged (unknown order).

A report whose identifiers could not be Postgres keys (a fill for a 10 kB symbol: a position's
b-tree key holds at most 2704 bytes) is a dead letter (`identifier_too_long`) instead. Checked
by removing that rule: the run then did not finish within 200 s (it takes about 30 s), because
the position row fails every Postgres write of its batch.

What it proves, per bad report: it is logged (a warning naming the exec_id and the reason),
alerted (an `invalid_execution` alert whose source is the exec_id, in Postgres, ClickHouse and
on risk.alerts), recorded as `invalid` with the reason in execution_log, and not applied (the
order and the position are what the valid reports alone make them).
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from bytewax.testing import run_main

from flows.trading import build_flow
from jobs.init import create_topics, init_clickhouse, init_postgres
from schemas.catalogue import TOPIC_ALERTS, TOPIC_DLQ, TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from tapeflow.core.models import ExecType, OrdStatus
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.trading_builders import OrderSim, u

SHARD = ShardConfig(snapshot_interval_us=10_000_000)

a = OrderSim("A", qty=u(10))
b = OrderSim("B", qty=u(10), ts=a.ts + 1_000_000)
ghost = OrderSim("GHOST", qty=u(3), ts=a.ts + 2_000_000)
VALID = [a.new(), a.fill(u(4), u(100)), a.cancel(), b.new(), b.fill(u(2), u(101))]
BAD = [
    ("fill after cancel", a.fill(u(2), u(100)), "not allowed in status CANCELED"),
    ("partial fill that completes the order",
     b.fill(u(8), u(101))._replace(exec_type=ExecType.PARTIAL_FILL,
                                   ord_status=OrdStatus.PARTIALLY_FILLED),
     "completes the order"),
    ("fill for an unknown order", ghost.fill(u(3), u(99)), "unknown order"),
]
# ~10 kB of CJK characters that do not repeat (Postgres compresses a repetitive key to fit)
LONG_SYMBOL = "".join(chr(0x4E00 + i) for i in random.Random(6).sample(range(20_000), 3_400))
huge = OrderSim("H", qty=u(1), symbol=LONG_SYMBOL, ts=a.ts + 3_000_000)
HUGE = [huge.new(), huge.fill(u(1), u(100))]  # a fill: its position's key holds the symbol


def _pg(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.postgres.dsn is not None
    with connect_postgres(settings.postgres.dsn.get_secret_value(),
                          settings.postgres.schema) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_reports_that_break_the_state_machine(settings: Settings,
                                              caplog: pytest.LogCaptureFixture) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings.with_overrides(clickhouse_database=f"tf_inv_{tag}",
                                       postgres_schema=f"tf_inv_{tag}")
    assert settings.postgres.dsn is not None
    init_clickhouse(settings)
    init_postgres(settings, settings.postgres.dsn.get_secret_value())
    create_topics(settings)
    codec = Codec(LocalCatalogue.load())
    writer = KafkaWriter(settings.kafka_config())
    for report in [*HUGE, *VALID, *(r for _, r, _ in BAD)]:
        writer.send(settings.topic(TOPIC_EXECUTIONS), codec.encode(report), key=report.account_id)
    writer.flush()

    with caplog.at_level(logging.WARNING, logger="tapeflow.flows.trading"):
        run_main(build_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                            shard_config=SHARD))

    log = _pg(settings, "SELECT exec_id, outcome, outcome_detail FROM execution_log")
    outcomes = {exec_id: (outcome, detail) for exec_id, outcome, detail in log}
    assert {r.exec_id for r in VALID} | {r.exec_id for _, r, _ in BAD} == set(outcomes)
    assert all(outcomes[r.exec_id][0] == "applied" for r in VALID)
    pg_alerts = {src: rule for rule, src in _pg(settings, "SELECT rule, source_event_id "
                                                           "FROM alerts")}
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    ch_alerts = {src: rule for rule, src in client.query(
        "SELECT rule, source_event_id FROM alerts FINAL").result_rows}
    topic_alerts = {a.source_event_id: a.rule for a in (
        codec.decode(m.value(), expect="RiskAlert")
        for m in read_all(settings.kafka_config(), settings.topic(TOPIC_ALERTS)))}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    letters = [codec.decode(m.value(), expect="DeadLetter")
               for m in read_all(settings.kafka_config(), settings.topic(TOPIC_DLQ))]
    assert sorted((d.reason, d.raw) for d in letters) == sorted(
        ("identifier_too_long", codec.encode(r)) for r in HUGE)

    for case, report, reason in BAD:
        outcome, detail = outcomes[report.exec_id]
        assert outcome == "invalid" and reason in detail, (case, detail)
        for where in (pg_alerts, ch_alerts, topic_alerts):
            assert where.get(report.exec_id) == "invalid_execution", case
        assert any(report.exec_id in w and reason in w for w in warnings), (case, warnings)

    # Not applied: the orders and the position are those of the valid reports alone.
    orders = {oid: (status, cum) for oid, status, cum in _pg(
        settings, "SELECT order_id, status, cum_qty FROM orders")}
    assert orders == {"A": ("CANCELED", Decimal(4)), "B": ("PARTIALLY_FILLED", Decimal(2))}
    assert _pg(settings, "SELECT symbol, qty FROM positions") == [("XYZ", Decimal(6))]
