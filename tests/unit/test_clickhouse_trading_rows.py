"""Trading records as ClickHouse rows: columns as the DDL declares them, exact values, checks."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from sinks.clickhouse.rows import RowRangeError
from sinks.clickhouse.trading_rows import TABLE_COLUMNS, to_row
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.core.trading.account_step import TradingOutput
from tapeflow.core.trading.orders import Duplicate
from tapeflow.core.trading.shard_step import ExecutionResult, PnlSnapshot
from tests.support.trading_builders import T0, OrderSim, u

DDL = "\n".join(path.read_text() for path in sorted(
    (Path(__file__).resolve().parents[2] / "schemas" / "clickhouse").glob("[0-9]*.sql")))
"""Every migration, in order: the tables as `tapeflow init` leaves them."""


def _ddl_columns(table: str) -> tuple[str, ...]:
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table}\s*\((.*?)\)\s*ENGINE", DDL, re.S)
    assert body, table
    names = [line.split()[0] for line in body.group(1).splitlines() if line.strip()]
    names += re.findall(rf"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS (\w+)", DDL)
    return tuple(n for n in names if n != "ingested_at")


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_columns_are_the_tables_columns(table: str) -> None:
    assert TABLE_COLUMNS[table] == _ddl_columns(table)


def test_an_execution_row_carries_the_report_and_its_verdict() -> None:
    sim = OrderSim("o", qty=u(10))
    sim.new()
    report = sim.fill(u("2.5"), u("100.12345678"), commission=u("0.01"))
    outcome = Duplicate("o", report.exec_id, "cum_qty 2 does not advance")
    table, row = to_row(ExecutionResult(report, TradingOutput(outcome)))
    got = dict(zip(TABLE_COLUMNS[table], row, strict=True))
    assert table == "executions"
    assert got["last_px"] == Decimal("100.12345678") and got["last_qty"] == Decimal("2.5")
    assert got["ts_event"] == report.ts_event and got["side"] == "BUY"
    assert (got["outcome"], got["outcome_detail"]) == ("duplicate", outcome.reason)
    with pytest.raises(ValueError, match="no outcome"):
        to_row(ExecutionResult(report, TradingOutput()))


def test_pnl_and_alert_rows_are_exact_and_range_checked() -> None:
    snap = PnlSnapshot("ACC", "", T0, 0, 0, None, -u("0.00000001"), 0, 10**30, 10**30, 7)
    table, row = to_row(snap)
    got = dict(zip(TABLE_COLUMNS[table], row, strict=True))
    assert got["cash"] == Decimal(10**30) / Decimal(10**8) and got["mark"] is None
    assert got["realised_pnl"] == Decimal("-0.00000001") and got["version"] == 7
    with pytest.raises(RowRangeError, match=r"pnl_snapshots\.qty"):
        to_row(snap._replace(qty=10**18))
    alert = RiskAlert("id", "order_size", Severity.WARNING, None, None, T0, u(5), None, "m", "x")
    table, row = to_row(alert)
    got = dict(zip(TABLE_COLUMNS[table], row, strict=True))
    assert (got["observed"], got["limit_value"], got["severity"]) == (Decimal(5), None, "WARNING")
    with pytest.raises(TypeError):
        to_row("not a record")  # type: ignore[arg-type]
