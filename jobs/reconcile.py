"""`tapeflow reconcile --date D [--statement F] [--oms-orders F]`: rebuild positions and cash
from the ClickHouse audit trail, compare with Postgres, and with someone else's records when
given (a broker/clearing statement, the OMS's final order state); record the breaks, alert on
each one. docs/reconcile.md.

The decisions (what is compared, as of when, in what order) are in
`tapeflow.core.trading.reconcile`;
this module only reads and writes:

1. read every report of ClickHouse `executions` and every movement of `cash_movements`
   (`sources.clickhouse.audit_trail`) and recompute the state at the end of D with the core
   (`tapeflow.core.trading.reconcile.expected_at`), accounts opened as the flow opens them
   (the `trading` settings, `account_currencies`): nothing else is read from Postgres for it;
2. read Postgres `positions` and `accounts` and compare exactly (scale-8 integers); compare
   the statement file with the recomputed state and the OMS order file with Postgres
   `orders` (`tapeflow.core.trading.reconcile_external`, files read by
   `sources.files.statements`);
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
from pathlib import Path
from typing import Any

from schemas.catalogue import TOPIC_ALERTS
from schemas.codec import Codec, codec_for
from schemas.sql_files import statement
from sinks.clickhouse.trading_rows import TABLE_COLUMNS as CLICKHOUSE_TRADING_COLUMNS
from sinks.clickhouse.trading_rows import alert_row as clickhouse_alert_row
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.kafka.producer import KafkaWriter
from sinks.postgres.rows import alert_row as postgres_alert_row
from sinks.postgres.rows import to_datetime, to_micros
from sinks.postgres.writer import PostgresWriter
from sources.clickhouse.audit_trail import read_movements, read_reports
from sources.files.statements import read_oms_orders, read_statement
from sources.postgres.reference import load_account_currencies
from tapeflow.core.fixedpoint import to_decimal, to_units
from tapeflow.core.models import OrdStatus, RiskAlert
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.reconcile import (
    ACCOUNT_FIELDS,
    ACCOUNT_LEVEL,
    POSITION_FIELDS,
    STORE,
    Break,
    Key,
    Opening,
    Values,
    break_alert,
    compare,
    cutoff_us,
    expected_at,
    run_id,
    show,
)
from tapeflow.core.trading.reconcile_external import (
    StoredOrder,
    compare_orders,
    compare_statement,
)
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
    outside_compared: int = 0
    """Statement rows and OMS orders compared."""
    outside_skipped: int = 0
    """OMS orders skipped: Tapeflow changed them after the date."""

    def lines(self) -> list[str]:
        """The printed report: one line per break, then a summary."""
        out = []
        if self.breaks:
            outside = any(b.against != STORE for b in self.breaks)
            out.append(f"{'account':14} {'symbol':12} {'field':14} {'expected':>22} "
                       f"{'actual':>22}" + ("  against" if outside else ""))
            for b in self.breaks:
                against = f"  {b.against}" if outside else ""
                out.append(f"{b.account_id:14} {b.symbol or '-':12} {b.field:14} "
                           f"{show(b.expected):>22} {show(b.actual):>22}{against}")
        outside = ""
        if self.outside_compared or self.outside_skipped:
            outside = (f", {self.outside_compared:,} outside records compared "
                       f"({self.outside_skipped:,} orders skipped: changed after the date)")
        out.append(
            f"reconcile {self.day.isoformat()} (run {self.run_id}): {self.reports:,} reports "
            f"replayed, {self.compared:,} positions/accounts compared, {self.skipped:,} skipped "
            f"(fills after the date){outside}, {len(self.breaks):,} breaks, "
            f"{self.alerts_sent:,} alerts sent")
        return out


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


def stored_orders(conn: Any) -> dict[str, StoredOrder]:
    """Postgres `orders` as the comparison with the OMS takes them."""
    return {oid: StoredOrder(oid, acct, symbol, to_units(cum), OrdStatus(status),
                             to_micros(ts_last))
            for oid, acct, symbol, cum, status, ts_last
            in conn.execute(statement(PG_QUERIES, "orders")).fetchall()}


def _number(value: int | str | None) -> Decimal | None:
    return to_decimal(value) if isinstance(value, int) else None


def _text(value: int | str | None) -> str | None:
    return value if isinstance(value, str) else None


def _record(conn: Any, report: ReconcileReport, alert_ids: Mapping[Break, str]) -> None:
    """The run and its breaks, in one transaction; idempotent per (run_date, run_id)."""
    with conn.transaction():
        conn.execute(statement(PG_QUERIES, "upsert_run"), {
            "run_date": report.day, "run_id": report.run_id,
            "cutoff": to_datetime(cutoff_us(report.day)), "reports": report.reports,
            "compared": report.compared, "skipped": report.skipped,
            "breaks": len(report.breaks), "outside_compared": report.outside_compared,
            "outside_skipped": report.outside_skipped})
        with conn.cursor() as cur:
            cur.executemany(statement(PG_QUERIES, "insert_break"), [
                {"run_date": report.day, "run_id": report.run_id, "against": b.against,
                 "account_id": b.account_id, "symbol": b.symbol, "field": b.field,
                 "expected": _number(b.expected), "actual": _number(b.actual),
                 "expected_text": _text(b.expected), "actual_text": _text(b.actual),
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
                  raise_alerts: bool = True, statement_file: Path | None = None,
                  oms_orders_file: Path | None = None) -> ReconcileReport:
    """Reconcile the end of `day` (UTC). Accounts open as the trading flow opens them: its
    settings (`settings.trading`: initial cash, retention, currency) and the Postgres
    `account_currencies`; `initial_cash` and `retention` override the settings'. The
    statement and OMS order files are optional (docs/reconcile.md)."""
    shard = settings.trading.core_config()
    statement_rows = read_statement(statement_file) if statement_file else None
    oms = read_oms_orders(oms_orders_file) if oms_orders_file else None
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    cutoff = cutoff_us(day)
    with connect_postgres(_postgres_dsn(settings), settings.postgres.schema,
                          autocommit=True) as conn:
        opening = Opening(shard.initial_cash if initial_cash is None else initial_cash,
                          shard.currency, load_account_currencies(conn),
                          retention or shard.retention)
        expected = expected_at(read_reports(client), cutoff,
                               initial_cash=opening.initial_cash, opening=opening,
                               movements=list(read_movements(client)))
        breaks, compared = compare(expected, actual_values(conn))
        outside_compared = outside_skipped = 0
        if statement_rows is not None:
            found, n = compare_statement(statement_rows, expected.accounts)
            breaks, outside_compared = breaks + found, outside_compared + n
        if oms is not None:
            found, n, skipped = compare_orders(oms, stored_orders(conn), cutoff)
            breaks, outside_compared = breaks + found, outside_compared + n
            outside_skipped += skipped
        rid = run_id(day, breaks, compared + outside_compared, expected.reports)
        alerts = [break_alert(b, day) for b in breaks]
        report = ReconcileReport(day, rid, expected.reports, compared, len(expected.skipped),
                                 breaks, alerts, 0, outside_compared, outside_skipped)
        _record(conn, report, {b: a.alert_id for b, a in zip(breaks, alerts, strict=True)})
        sent = 0
        if alerts and raise_alerts:
            sent = _raise_alerts(settings, codec or codec_for(settings), conn, client, alerts)
    return ReconcileReport(day, rid, expected.reports, compared, len(expected.skipped),
                           breaks, alerts, sent, outside_compared, outside_skipped)
