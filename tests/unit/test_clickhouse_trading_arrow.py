"""`sinks.clickhouse.trading_arrow`: the Arrow batches of the trading tables hold exactly what the
row mappers (`sinks.clickhouse.trading_rows`) give, value for value, and refuse what they refuse.
A differential test over the scenario's records plus hypothesis-made extremes of every numeric
column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse.rows import MAX_D18, MAX_D38, RowRangeError
from sinks.clickhouse.trading_arrow import alerts_table, cash_table, executions_table, pnl_table
from sinks.clickhouse.trading_rows import alert_row, cash_row, execution_row, pnl_row
from tapeflow.core.models import CashKind, CashMovement, RiskAlert, Severity, Unit
from tapeflow.core.trading.cash import CashOutcome
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, PnlSnapshot
from tests.support.postgres_scenario import scenario
from tests.support.trading_builders import T0


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The table's rows with timestamps as integer microseconds, as the row mappers give."""
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def _results() -> list[ExecutionResult]:
    return [ExecutionResult(step.report, step.output) for step in scenario()
            if step.report is not None]


def test_executions_equal_the_row_mapper() -> None:
    results = _results()
    # FIX 4.4 busts and corrections name the execution they undo (ExecRefID).
    results += [r._replace(report=r.report._replace(exec_id=f"{r.report.exec_id}-c",
                                                    exec_ref_id=r.report.exec_id))
                for r in results[:3]]
    assert _rows(executions_table(results)) == [execution_row(r) for r in results]
    assert {row[-1] for row in _rows(executions_table(results))} > {None}


def _cash(movement: CashMovement, outcome: CashOutcome) -> CashResult:
    return CashResult(movement, outcome, next(iter(scenario())).output)


def test_cash_movements_equal_the_row_mapper() -> None:
    results = [
        _cash(CashMovement("dep", "A", CashKind.DEPOSIT, MAX_D18, "USD", T0, None),
              CashOutcome("applied")),
        _cash(CashMovement("wd", "A", CashKind.WITHDRAWAL, 1, "USD", T0 + 1, "to bank ÆØÅ"),
              CashOutcome("applied")),
        _cash(CashMovement("fee", "B", CashKind.FEE, 12_345_678, "EUR", T0 + 2, None),
              CashOutcome("invalid", "currency EUR is not the account's (USD)")),
        _cash(CashMovement("dep", "A", CashKind.DEPOSIT, MAX_D18, "USD", T0, None),
              CashOutcome("duplicate", "movement_id already applied")),
    ]
    assert _rows(cash_table(results)) == [cash_row(r) for r in results]


def test_a_cash_amount_beyond_its_column_is_refused_like_the_row_mapper() -> None:
    bad = _cash(CashMovement("big", "A", CashKind.DEPOSIT, MAX_D18 + 1, "USD", T0, None),
                CashOutcome("applied"))
    with pytest.raises(RowRangeError):
        cash_row(bad)
    with pytest.raises(RowRangeError, match="amount"):
        cash_table([bad])


def test_alerts_equal_the_row_mapper() -> None:
    alerts = [a for step in scenario() for a in step.output.alerts]
    assert alerts
    assert _rows(alerts_table(alerts)) == [alert_row(a) for a in alerts]


money = st.integers(-MAX_D38, MAX_D38)
price = st.integers(-MAX_D18, MAX_D18)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(price, price, st.none() | price, money, money, money, money,
                          st.integers(0, 2**40)), min_size=1, max_size=8))
def test_pnl_snapshots_equal_the_row_mapper_over_the_whole_range(values: list[Any]) -> None:
    snaps = [PnlSnapshot("A", f"S{i}", T0 + i, qty, avg, mark, real, unreal, cash, equity, v)
             for i, (qty, avg, mark, real, unreal, cash, equity, v) in enumerate(values)]
    got = _rows(pnl_table(snaps, version_base=1000))
    want = [pnl_row(s._replace(version=s.version + 1000)) for s in snaps]
    assert got == want
    assert all(isinstance(v, Decimal) for row in got for v in row[3:10] if v is not None)


@pytest.mark.parametrize(("field", "value"), [
    ("qty", MAX_D18 + 1), ("avg_px", -MAX_D18 - 1), ("cash", MAX_D38 + 1),
    ("equity", -MAX_D38 - 1), ("ts", 10**17),
])
def test_a_value_beyond_its_column_is_refused_like_the_row_mapper(field: str,
                                                                  value: int) -> None:
    snap = PnlSnapshot("A", "S", T0, 1, 1, None, 0, 0, 0, 0, 1)._replace(**{field: value})
    with pytest.raises(RowRangeError):
        pnl_row(snap)
    with pytest.raises(RowRangeError, match=field):
        pnl_table([snap])


def test_an_alert_without_figures_keeps_its_nulls() -> None:
    alert = RiskAlert("id1", "stale_market_data", Severity.WARNING, "A", None, T0, None, None,
                      "no mark", "src")
    assert _rows(alerts_table([alert])) == [alert_row(alert)]


def test_every_alert_unit_equals_the_row_mapper() -> None:
    alerts = [RiskAlert(f"id-{unit}", "r", Severity.INFO, "A", None, T0, 1, -1, "m", "src",
                        unit) for unit in Unit]
    got = _rows(alerts_table(alerts))
    assert got == [alert_row(a) for a in alerts]
    assert [row[-1] for row in got] == [str(unit) for unit in Unit]
