"""`tapeflow reconcile --date D`: rebuild positions and cash from the ClickHouse audit trail,
compare with Postgres, record the breaks, alert on each one. docs/reconcile.md.

The decisions (what is compared, as of when, in what order) are in
`tapeflow.core.trading.reconcile`;
this module only reads and writes:

1. read every report of ClickHouse `executions` (`sources.clickhouse.audit_trail`) and recompute the
   state at the end of D with the core (`tapeflow.core.trading.reconcile.expected_at`): nothing is
   read from Postgres for that;
2. read Postgres `positions` and `accounts` and compare exactly (scale-8 integers);
3. record the run and its breaks in Postgres (`reconciliation_runs`/`_breaks`, idempotent per
   (date, run_id)), in one transaction;
4. one `reconciliation_break` alert per break: to `risk.alerts` (only ids not already in the
   Postgres `alerts` table, so a re-run does not repeat them on the topic), then to the
   Postgres and ClickHouse `alerts` tables through the sinks' writers.

Order of effects, and why: the topic first, then the tables. A crash after the topic and
before the tables re-sends those alerts on the next run (at-least-once; same ids); the other
order could record an alert as raised that nobody was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from schemas.catalogue import TOPIC_ALERTS
from schemas.codec import Codec, codec_for
from schemas.sql_files import statement
from sinks.clickhouse.trading_rows import TABLE_COLUMNS as CLICKHOUSE_TRADING_COLUMNS
from sinks.clickhouse.trading_rows import alert_row as clickhouse_alert_row
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.kafka.producer import KafkaWriter
from sinks.postgres.rows import alert_row as postgres_alert_row
from sinks.postgres.rows import to_datetime
from sinks.postgres.writer import PostgresWriter
from sources.clickhouse.audit_trail import read_reports
from tapeflow.core.fixedpoint import fmt, to_decimal, to_units
from tapeflow.core.models import RiskAlert
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.reconcile import (
    ACCOUNT_FIELDS,
    ACCOUNT_LEVEL,
    POSITION_FIELDS,
    Break,
    Key,
    Values,
    break_alert,
    compare,
    cutoff_us,
    expected_at,
    run_id,
)
from tapeflow.core.trading.shard_step import DEFAULT_SHARD_CONFIG
from tapeflow.errors import StoreUnavailableError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

PG_QUERIES = "queries/reconcile_postgres.sql"


@dataclass(frozen=True)
class ReconcileReport:
    """What one run found and did."""

    day: date
    run_id: str
    reports: int
    compared: int
    skipped: int
    breaks: list[Break]
    alerts: list[RiskAlert] = field(default_factory=list)
    alerts_sent: int = 0

    def lines(self) -> list[str]:
        """The printed report: one line per break, then a summary."""
        out = []
        if self.breaks:
            out.append(f"{'account':14} {'symbol':12} {'field':14} {'expected':>22} "
                       f"{'actual':>22}")
            for b in self.breaks:
                out.append(f"{b.account_id:14} {b.symbol or '-':12} {b.field:14} "
                           f"{_show(b.expected):>22} {_show(b.actual):>22}")
        out.append(
            f"reconcile {self.day.isoformat()} (run {self.run_id}): {self.reports:,} reports "
            f"replayed, {self.compared:,} positions/accounts compared, {self.skipped:,} skipped "
            f"(fills after the date), {len(self.breaks):,} breaks, "
            f"{self.alerts_sent:,} alerts sent")
        return out


def _show(units: int | None) -> str:
    return "missing" if units is None else fmt(units)


def _units(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def _postgres_dsn(settings: Settings) -> str:
    if settings.postgres.dsn is None:
        raise StoreUnavailableError("no Postgres DSN: set TAPEFLOW_POSTGRES_DSN")
    return settings.postgres.dsn.get_secret_value()


def actual_values(conn: Any) -> dict[Key, Values]:
    """Postgres `positions` and `accounts`, in the compared fields, as scale-8 integers."""
    out: dict[Key, Values] = {}
    for row in conn.execute(statement(PG_QUERIES, "positions")).fetchall():
        acct, symbol, *values = row
        out[(acct, symbol)] = {f: _units(v) for f, v in zip(POSITION_FIELDS, values,
                                                             strict=True)}
    for row in conn.execute(statement(PG_QUERIES, "accounts")).fetchall():
        acct, *values = row
        out[(acct, ACCOUNT_LEVEL)] = {f: _units(v) for f, v in zip(ACCOUNT_FIELDS, values,
                                                                    strict=True)}
    return out


def _record(conn: Any, report: ReconcileReport, alert_ids: Mapping[Break, str]) -> None:
    """The run and its breaks, in one transaction; idempotent per (run_date, run_id)."""
    with conn.transaction():
        conn.execute(statement(PG_QUERIES, "upsert_run"), {
            "run_date": report.day, "run_id": report.run_id,
            "cutoff": to_datetime(cutoff_us(report.day)), "reports": report.reports,
            "compared": report.compared, "skipped": report.skipped,
            "breaks": len(report.breaks)})
        with conn.cursor() as cur:
            cur.executemany(statement(PG_QUERIES, "insert_break"), [
                {"run_date": report.day, "run_id": report.run_id, "account_id": b.account_id,
                 "symbol": b.symbol, "field": b.field,
                 "expected": None if b.expected is None else to_decimal(b.expected),
                 "actual": None if b.actual is None else to_decimal(b.actual),
                 "alert_id": alert_ids[b]}
                for b in report.breaks])


def _raise_alerts(settings: Settings, codec: Codec, conn: Any, client: Any,
                  alerts: list[RiskAlert]) -> int:
    """Send the alerts not yet known to the topic (and each to its account's desk topic, as
    the trading flow does), then write all to both alerts tables."""
    known = {row[0] for row in conn.execute(statement(PG_QUERIES, "known_alerts"),
                                            {"alert_ids": [a.alert_id for a in alerts]})}
    fresh = [a for a in alerts if a.alert_id not in known]
    if fresh:
        desk_of = settings.access.desk_of()
        producer = KafkaWriter(settings.kafka_config())
        for alert in fresh:
            value = codec.encode(alert)
            producer.send(settings.topic(TOPIC_ALERTS), value, key=alert.account_id)
            desk = desk_of.get(alert.account_id or "")
            if desk is not None:
                producer.send(settings.desk_topic(desk), value, key=alert.account_id)
        producer.flush()
    pg = PostgresWriter.from_dsn(_postgres_dsn(settings), settings.postgres.schema)
    try:
        pg.add_many(("alerts", postgres_alert_row(a)) for a in alerts)
        pg.flush()
    finally:
        pg.close()
    ch = ClickHouseWriter(client, columns=CLICKHOUSE_TRADING_COLUMNS)
    for alert in alerts:
        ch.add("alerts", clickhouse_alert_row(alert))
    ch.flush()
    return len(fresh)


def run_reconcile(settings: Settings, day: date, *, initial_cash: int | None = None,
                  retention: OrderRetention | None = None, codec: Codec | None = None,
                  raise_alerts: bool = True) -> ReconcileReport:
    """Reconcile the end of `day` (UTC). `initial_cash` and `retention` must be the trading
    flow's (default: its defaults, `trading_step.DEFAULT_SHARD_CONFIG`)."""
    shard = DEFAULT_SHARD_CONFIG
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    expected = expected_at(read_reports(client), cutoff_us(day),
                           initial_cash=shard.initial_cash if initial_cash is None
                           else initial_cash,
                           retention=retention or shard.retention)
    with connect_postgres(_postgres_dsn(settings), settings.postgres.schema,
                          autocommit=True) as conn:
        breaks, compared = compare(expected, actual_values(conn))
        rid = run_id(day, breaks, compared, expected.reports)
        alerts = [break_alert(b, day) for b in breaks]
        report = ReconcileReport(day, rid, expected.reports, compared, len(expected.skipped),
                                 breaks, alerts)
        _record(conn, report, {b: a.alert_id for b, a in zip(breaks, alerts, strict=True)})
        sent = 0
        if alerts and raise_alerts:
            sent = _raise_alerts(settings, codec or codec_for(settings), conn, client, alerts)
    return ReconcileReport(day, rid, expected.reports, compared, len(expected.skipped),
                           breaks, alerts, sent)
