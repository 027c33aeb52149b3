"""FIX 4.4 execution reports and cash movements through the real trading flow, then a
reconciliation against outside records that catches a lost report.

On the real broker, Postgres and chDB, one batch run of the trading flow reads:
- account A: scenario D10 (an execution while a replace is pending, reported with OrdStatus
  Pending Replace, then replaced and filled) and D4 (executions while a cancel is pending) in
  XYZ, and a filled order in DEF whose first execution is busted (Trade Cancel, ExecRefID);
- account B: an order whose last execution the OMS sent but Tapeflow never received (it is
  not on the topic: a lost report);
- oms.cash: deposits for both accounts (the accounts start with no cash), a fee, and a
  deposit in a currency that is not the account's (refused and alerted).

Proved: positions equal the venue's fills (D10: 8,000; D4: 1,500; the bust leaves 5 of 15),
orders end as the OMS says, cash is the deposits minus fees minus what was bought, each
oversized order alerts on its own with the unit `quantity` (Postgres and ClickHouse), the
refused deposit is alerted. Then `tapeflow reconcile` with a broker statement (CSV) and the
OMS's final order state (Parquet) finds exactly the lost report: B's quantity and cash on the
statement, B's order cum_qty and status in the OMS file; nothing against Tapeflow's own store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from bytewax.testing import run_main

from flows.trading import build_flow
from jobs.init import create_topics, init_clickhouse, init_postgres
from jobs.reconcile import run_reconcile
from schemas.catalogue import TOPIC_CASH, TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from tapeflow.core.models import CashKind, CashMovement, ExecutionReport, OrdStatus
from tapeflow.core.trading.reconcile import OMS, STATEMENT, Break
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.order_flow import LIMITS_SQL
from tests.support.trading_builders import T0, OrderSim, u


def _reports() -> tuple[list[ExecutionReport], ExecutionReport]:
    """Every report the OMS sent, in order, and the one Tapeflow never receives."""
    d10 = OrderSim("o10", qty=u(10_000), account_id="A")
    d4 = OrderSim("o4", qty=u(10_000), account_id="A", ts=T0 + 10**6)
    bust = OrderSim("o34", qty=u(15), account_id="A", symbol="DEF", limit_price=u(200),
                    ts=T0 + 2 * 10**6)
    lost = OrderSim("b1", qty=u(100), account_id="B", limit_price=u(20), ts=T0 + 3 * 10**6)
    sent = [d10.new(), d10.trade(u(1_000), u(10)), d10.pending_replace(),
            d10.trade(u(500), u(10)), d10.replace(u(8_000)), d10.trade(u(6_500), u(10)),
            d4.new(), d4.trade(u(1_000), u(10)), d4.pending_cancel(), d4.trade(u(500), u(10)),
            d4.cancel(),
            bust.new(), bust.trade(u(10), u(100)), bust.trade(u(5), u(110))]
    sent.append(bust.trade_cancel("o34-x2"))
    sent += [lost.new(), lost.trade(u(60), u(20))]
    assert sent[3].ord_status == OrdStatus.PENDING_REPLACE
    assert sent[9].ord_status == OrdStatus.PENDING_CANCEL
    return sent, lost.trade(u(40), u(20))


def _movements() -> list[CashMovement]:
    return [CashMovement("dep-A", "A", CashKind.DEPOSIT, u(1_000_000), "USD", T0 - 10, None),
            CashMovement("dep-B", "B", CashKind.DEPOSIT, u(500_000), "USD", T0 - 10, None),
            CashMovement("fee-A", "A", CashKind.FEE, u(10), "USD", T0 + 5 * 10**6, "fee"),
            CashMovement("eur-B", "B", CashKind.DEPOSIT, u(7), "EUR", T0 + 5 * 10**6, None)]


def test_fix44_reports_and_cash_through_the_flow_and_a_lost_report_reconciled(
        settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings.with_overrides(clickhouse_database=f"tf_fix_{tag}",
                                       postgres_schema=f"tf_fix_{tag}", trading_initial_cash=0)
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    init_clickhouse(settings)
    assert "0004_reconcile_external.sql" in init_postgres(settings, dsn)
    create_topics(settings)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()
    codec = Codec(LocalCatalogue.load())
    sent, lost = _reports()
    writer = KafkaWriter(settings.kafka_config())
    for movement in _movements():
        writer.send(settings.topic(TOPIC_CASH), codec.encode(movement), key=movement.account_id)
    for report in sent:
        writer.send(settings.topic(TOPIC_EXECUTIONS), codec.encode(report),
                    key=report.account_id)
    writer.flush()
    run_main(build_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                        shard_config=settings.trading.core_config()))

    with connect_postgres(dsn, settings.postgres.schema) as conn:
        positions = dict(((a, s), q) for a, s, q in conn.execute(
            "SELECT account_id, symbol, qty FROM positions").fetchall())
        orders = {o: (s, c) for o, s, c in conn.execute(
            "SELECT order_id, status, cum_qty FROM orders").fetchall()}
        accounts = {a: (c, cur, d, f) for a, c, cur, d, f in conn.execute(
            "SELECT account_id, cash, currency, net_deposits, fees FROM accounts").fetchall()}
        alerts = conn.execute("SELECT rule, severity, unit, source_event_id FROM alerts "
                              "ORDER BY rule, source_event_id").fetchall()
        logged = conn.execute("SELECT movement_id, outcome FROM cash_movements "
                              "ORDER BY movement_id").fetchall()
    assert positions == {("A", "XYZ"): 9_500, ("A", "DEF"): 5, ("B", "XYZ"): 60}
    assert orders == {"o10": ("FILLED", 8_000), "o4": ("CANCELED", 1_500),
                      "o34": ("PARTIALLY_FILLED", 5), "b1": ("PARTIALLY_FILLED", 60)}
    assert accounts == {"A": (1_000_000 - 10 - 95_000 - 550, "USD", 1_000_000, 10),
                        "B": (500_000 - 1_200, "USD", 500_000, 0)}
    assert [(m, o) for m, o in logged] == [("dep-A", "applied"), ("dep-B", "applied"),
                                           ("eur-B", "invalid"), ("fee-A", "applied")]
    sizes = [(sev, unit, src) for rule, sev, unit, src in alerts if rule == "order_size"]
    # One incident per oversized order (two in XYZ), each cleared when its order ended.
    assert sizes == [("CRITICAL", "quantity", "o10-x1"), ("INFO", "quantity", "o10-x6"),
                     ("CRITICAL", "quantity", "o4-x1"), ("INFO", "quantity", "o4-x5")]
    assert ("invalid_cash_movement", "CRITICAL", "money", "eur-B") in alerts
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    units = {tuple(r) for r in client.query(
        "SELECT rule, unit FROM alerts FINAL WHERE rule IN ('order_size', "
        "'invalid_cash_movement')").result_rows}
    assert units == {("order_size", "quantity"), ("invalid_cash_movement", "money")}
    refs = client.query("SELECT exec_ref_id FROM executions FINAL WHERE exec_type = "
                        "'TRADE_CANCEL'").result_rows
    assert [tuple(r) for r in refs] == [("o34-x2",)]

    # The outside records: the broker's statement and the OMS's final order state, both of
    # which know the execution Tapeflow never received (B bought 40 more at 20).
    statement = tmp_path / "statement.csv"
    statement.write_text("account_id,symbol,quantity,cash,currency\n"
                         "A,XYZ,9500,,\nA,DEF,5,,\nA,,,904440,USD\n"
                         "B,XYZ,100,,\nB,,,498000,USD\n")
    oms = tmp_path / "oms.parquet"
    pl.DataFrame({"order_id": ["o10", "o4", "o34", "b1"], "account_id": ["A", "A", "A", "B"],
                  "cum_qty": ["8000", "1500", "5", "100"],
                  "status": ["FILLED", "CANCELED", "PARTIALLY_FILLED", "FILLED"]}
                 ).write_parquet(oms)
    day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=lost.ts_event)).date()
    found = run_reconcile(settings, day, codec=codec, raise_alerts=False,
                          statement_file=statement, oms_orders_file=oms)
    assert found.breaks == [
        Break("B", "XYZ", "qty", u(100), u(60), STATEMENT),
        Break("B", "", "cash", u(498_000), u(498_800), STATEMENT),
        Break("B", "XYZ", "order:b1:cum_qty", u(100), u(60), OMS),
        Break("B", "XYZ", "order:b1:status", "FILLED", "PARTIALLY_FILLED", OMS),
    ]
    assert found.outside_compared == 5 + 4 and found.skipped == 0
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        recorded = conn.execute(
            "SELECT against, field, expected, actual, expected_text, actual_text "
            "FROM reconciliation_breaks WHERE run_id = %s ORDER BY against, field",
            (found.run_id,)).fetchall()
    assert [(a, f) for a, f, *_ in recorded] == [
        ("oms", "order:b1:cum_qty"), ("oms", "order:b1:status"), ("statement", "cash"),
        ("statement", "qty")]
    assert recorded[1][4:] == ("FILLED", "PARTIALLY_FILLED")
