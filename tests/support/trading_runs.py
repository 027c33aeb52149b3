"""The trading crash test's runs: one `tapeflow run trading --batch` deployment each
(`TradingRun`), with its own topics (a prefix), Postgres schema, chDB directory and recovery
store, and the input they are given (`trading_input`). Used by
tests/integration/test_trading_recovery.py."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from jobs.init import create_topics, grant_access, init_postgres
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_MARKS
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.models import ExecutionReport
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.flow_process import FlowProcess
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO
from tests.support.order_flow import unknown_fill
from tests.support.run_outputs import CHDB_SCRIPT

MARK_EVERY_US = 1_000_000
CH_TABLES = ("executions", "pnl_snapshots", "alerts")
LIMITS_SQL = """
UPDATE risk_limits SET max_order_qty = 1000, max_position_qty = 2000,
    max_order_notional = NULL, price_collar_bps = 30, max_leverage = NULL,
    max_daily_loss = 300, max_drawdown_bps = 5, max_concentration_bps = NULL,
    max_gross_exposure = NULL, max_turnover_notional = NULL, max_mark_age_us = NULL
WHERE account_id = '*'
"""
Records = list[tuple[bytes | None, bytes | None]]


def trading_input(spec: MarketSpec, codec: Codec) -> list[tuple[str, str | None, bytes]]:
    """(topic, key, value) of the executions (garbage and re-sends included) and the marks
    (the first clean trade per symbol per `MARK_EVERY_US`), in arrival order."""
    market = generate_market(spec)
    labels = market.labels
    out: list[tuple[str, str | None, bytes]] = []
    last_mark: dict[str, int] = {}
    first: ExecutionReport | None = None
    for pos, (topic, key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, Garbage):
                out.append((topic, key, record.frame(codec.encode)))
                continue
            first = first or record
            out.append((topic, key, codec.encode(record)))
        elif (topic == "md.trades" and labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            out.append((TOPIC_MARKS, record.symbol, codec.encode(record)))
    assert first is not None
    bad = unknown_fill(first)
    out.append((TOPIC_EXECUTIONS, bad.account_id, codec.encode(bad)))
    return out


class TradingRun(FlowProcess):
    """One `tapeflow run trading --batch` deployment: its own topics, Postgres schema,
    ClickHouse and recovery dirs."""

    def __init__(self, settings: Settings, root: Path, name: str,
                 records: list[tuple[str, str | None, bytes]]) -> None:
        assert settings.postgres.dsn is not None
        self.dsn = settings.postgres.dsn.get_secret_value()
        tag = uuid.uuid4().hex[:6]
        self.settings = settings.with_overrides(
            kafka_topic_prefix=f"{settings.kafka.topic_prefix}{name}.",
            postgres_schema=f"{settings.postgres.schema}_{name}_{tag}",
            clickhouse_dsn=f"chdb://{root / 'chdb'}")
        self.chdb_dir = root / "chdb"
        self.home = root / "home"
        self.log = root / "flow.log"
        self.flow = "trading"
        self.root = root
        create_topics(self.settings)
        grant_access(self.settings)  # its own topic prefix: the flow's ACLs on it
        init_postgres(self.settings, self.dsn)
        with connect_postgres(self.dsn, self.settings.postgres.schema) as conn:
            conn.execute(LIMITS_SQL)
            conn.commit()
        # chDB in a subprocess (one process per directory), started now and waited for later:
        # both runs' set-ups overlap.
        self._chdb_job = self._chdb("init", "", "")
        writer = KafkaWriter(self.settings.kafka_config())
        for topic, key, value in records:
            writer.send(self.settings.topic(topic), value, key=key)
        writer.flush()
        s = self.settings
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
        self.env.update({
            **kafka_env(s),
            "TAPEFLOW_CLICKHOUSE_DSN": s.clickhouse_url(),
            "TAPEFLOW_CLICKHOUSE_DATABASE": s.clickhouse.database,
            "TAPEFLOW_POSTGRES_DSN": self.dsn,
            "TAPEFLOW_POSTGRES_SCHEMA": s.postgres.schema,
            "TAPEFLOW_KAFKA_TOPIC_PREFIX": s.kafka.topic_prefix,
            "TAPEFLOW_HOME": str(self.home),
        })

    # -- reading the outputs ------------------------------------------------------------
    def pg(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        with connect_postgres(self.dsn, self.settings.postgres.schema) as conn:
            cur = conn.execute(f"SELECT * FROM {table}")  # test-only: fixed table names
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return sorted(tuple(r[c] for c in columns) for r in rows)

    def pg_all(self, table: str, leave_out: tuple[str, ...]) -> list[tuple[Any, ...]]:
        with connect_postgres(self.dsn, self.settings.postgres.schema) as conn:
            cur = conn.execute(f"SELECT * FROM {table}")
            names = [d.name for d in cur.description or ()]
        return self.pg(table, tuple(n for n in names if n not in leave_out))

    def _chdb(self, action: str, out: str, tables: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", CHDB_SCRIPT, action,
                                 self.settings.clickhouse_url(), self.settings.clickhouse.database,
                                 out, tables], cwd=REPO)

    def wait_chdb(self) -> None:
        assert self._chdb_job.wait(timeout=120) == 0, "chDB subprocess failed"

    def start_reading(self) -> None:
        """Read the ClickHouse tables (FINAL, without `ingested_at`) in a subprocess."""
        self._chdb_job = self._chdb("read", str(self.root / "tables.pickle"), ",".join(CH_TABLES))

    def clickhouse(self) -> dict[str, tuple[list[str], list[tuple[Any, ...]], int]]:
        self.wait_chdb()
        with (self.root / "tables.pickle").open("rb") as f:
            tables: dict[str, tuple[list[str], list[tuple[Any, ...]], int]] = pickle.load(f)
        return tables

    def topic(self, name: str) -> Records:
        msgs = read_all(self.settings.kafka_config(), self.settings.topic(name))
        return [(m.key(), m.value()) for m in msgs]
