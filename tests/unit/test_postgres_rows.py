"""The Postgres row mappers: exact numbers and timestamps, outcomes, range checks, and
agreement with the named statements of schemas/postgres/statements.sql."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.postgres.rows import (
    MAX_N18,
    MAX_N38,
    MAX_TS_US,
    MIN_TS_US,
    TABLE_COLUMNS,
    TABLE_KEYS,
    PgRangeError,
    account_row,
    alert_row,
    execution_row,
    order_row,
    position_row,
    to_datetime,
    to_micros,
    trading_rows,
)
from sinks.postgres.writer import STATEMENT_OF
from sources.postgres.reference import LIMIT_COLUMNS, decimal_units
from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.core.risk.limits import RiskLimits
from tapeflow.core.trading.orders import Applied, Duplicate, Invalid, transition
from tapeflow.core.trading.positions import AccountState, Position
from tapeflow.services.postgres_sql import parameters, parse_statements, statements
from tests.support.postgres_scenario import scenario
from tests.support.trading_builders import T0, OrderSim

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _units(value: Decimal | None) -> int | None:
    """Back from the row to scale-8 units, independently of the code under test: from the
    Decimal's digits and exponent (no context, so nothing can round)."""
    if value is None:
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int) and exponent >= -8
    units: int = int("".join(map(str, digits))) * 10 ** (exponent + 8)
    return -units if sign else units


def _position(**changes: object) -> Position:
    base = Position("ACC", "XYZ", 3 * ONE, 3 * ONE * to_units("100.1"), -5 * ONE * ONE,
                    to_units("1.5"), to_units("101.25"), T0 + 5, T0, T0 + 9, 4)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_every_table_has_a_statement_binding_exactly_its_columns() -> None:
    for table, columns in TABLE_COLUMNS.items():
        assert set(parameters(STATEMENT_OF[table])) == set(columns), table
        assert set(TABLE_KEYS[table]) <= set(columns)
    for name in ("select_risk_limits", "select_risk_symbol_limits", "select_instruments"):
        assert name in statements()


def test_risk_limit_columns_cover_every_risk_limits_field() -> None:
    fields = {f.name for f in dataclasses.fields(RiskLimits)}
    assert set(LIMIT_COLUMNS) | {"symbol_position_qty"} == fields
    text = statements()["select_risk_limits"].as_string()
    for column in LIMIT_COLUMNS:
        assert column in text


def test_statement_files_refuse_duplicates_and_drop_comments() -> None:
    parsed = parse_statements("-- name: a\n-- 100% a comment\nSELECT 1;\n-- name: b\nSELECT 2")
    assert parsed == {"a": "SELECT 1", "b": "SELECT 2"}
    with pytest.raises(ValueError, match="twice"):
        parse_statements("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2")
    with pytest.raises(ValueError, match="empty"):
        parse_statements("-- name: a\n-- nothing\n")


@pytest.mark.parametrize("ts", [0, T0, T0 + 999_999, -1, MIN_TS_US, MAX_TS_US])
def test_timestamps_are_aware_utc_and_exact(ts: int) -> None:
    value = to_datetime(ts)
    assert value.tzinfo is UTC
    assert (value - EPOCH) // timedelta(microseconds=1) == ts
    assert to_micros(value) == ts
    if MIN_TS_US < ts < MAX_TS_US:  # the ends cannot be shown in another zone
        assert to_micros(value.astimezone(ZoneInfo("America/New_York"))) == ts


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_micros(datetime(2026, 1, 5))  # noqa: DTZ001 - the point of the test


@given(st.integers(-MAX_N18, MAX_N18), st.integers(-MAX_N38, MAX_N38),
       st.integers(MIN_TS_US, MAX_TS_US))
def test_positions_round_trip_exactly(qty: int, realised_16: int, ts: int) -> None:
    p = _position(qty=qty or 1, cost_basis_16=(qty or 1) * 100 * ONE, realised_16=realised_16,
                  mark_px=100 * ONE, mark_ts=ts, ts_last=ts)
    row = position_row(p)
    assert all(not isinstance(v, float) for v in row.values())
    assert _units(row["qty"]) == decimal_units(row["qty"], "qty") == p.qty
    assert _units(row["avg_px"]) == p.avg_cost == 100 * ONE
    assert _units(row["realised_pnl"]) == p.realised_pnl
    assert _units(row["unrealised_pnl"]) == p.unrealised_pnl
    assert to_micros(row["mark_ts"]) == ts and to_micros(row["ts_last"]) == ts
    assert row["version"] == p.version


def test_a_flat_position_has_no_average_and_no_opening() -> None:
    row = position_row(_position(qty=0, cost_basis_16=0, opened_ts=None, mark_ts=None))
    assert row["avg_px"] is None and row["opened_ts"] is None and row["mark_ts"] is None


def test_orders_round_trip_exactly() -> None:
    sim = OrderSim("O1", 3 * ONE)
    steps = [sim.new(), sim.fill(ONE, to_units("99.99999999")), sim.fill(2 * ONE, 100 * ONE)]
    order = None
    for report in steps:
        order, outcome = transition(order, report)
        assert isinstance(outcome, Applied)
    assert order is not None
    row = order_row(order)
    assert set(row) == set(TABLE_COLUMNS["orders"])
    assert row["status"] == "FILLED" and row["side"] == "BUY" and row["order_type"] == "LIMIT"
    assert _units(row["cum_qty"]) == 3 * ONE and _units(row["leaves_qty"]) == 0
    assert _units(row["avg_px"]) == order.avg_px
    assert _units(row["limit_price"]) == 100 * ONE and row["stop_price"] is None
    assert row["last_exec_id"] == steps[-1].exec_id and row["version"] == 3
    assert to_micros(row["ts_created"]) == steps[0].ts_event
    assert to_micros(row["ts_last"]) == steps[-1].ts_event


def test_accounts_show_the_scale8_views() -> None:
    account = AccountState("ACC", cash_16=123 * ONE * ONE + 5 * ONE // 10, realised_16=-7,
                           commissions=to_units("0.25"), peak_equity_16=200 * ONE * ONE,
                           ts_last=T0, version=9)
    row = account_row(account)
    assert set(row) == set(TABLE_COLUMNS["accounts"])
    assert _units(row["cash"]) == account.cash == 123 * ONE  # 123.000000005: half-even
    assert row["realised_pnl"] == Decimal(0)
    assert _units(row["equity"]) == account.equity and _units(row["peak_equity"]) == 200 * ONE
    assert _units(row["commissions"]) == to_units("0.25") and row["version"] == 9


def test_execution_rows_carry_the_outcome_and_its_reason() -> None:
    sim = OrderSim("O1", 3 * ONE)
    new = sim.new()
    assert execution_row(new, Duplicate("O1", new.exec_id, "exec_id already applied")) == {
        **execution_row(new, Invalid("O1", new.exec_id, "x")),
        "outcome": "duplicate", "outcome_detail": "exec_id already applied",
    }
    row = execution_row(new, Invalid("O1", new.exec_id, "NEW with ord_status FILLED"))
    assert (row["outcome"], row["outcome_detail"]) == ("invalid", "NEW with ord_status FILLED")
    assert row["last_px"] is None and row["commission"] is None and row["last_qty"] == 0
    with pytest.raises(ValueError, match="not about report"):
        execution_row(new, Invalid("O1", "other", "x"))


def test_alert_rows_leave_acknowledgement_to_operators() -> None:
    alert = RiskAlert("a1", "max_order_qty", Severity.CRITICAL, "ACC", None, T0,
                      900 * ONE, 500 * ONE, "too big", "O2-x1")
    row = alert_row(alert)
    assert set(row) == set(TABLE_COLUMNS["alerts"])
    assert not any(column.startswith(("ack", "acknowledged")) for column in row)
    assert _units(row["observed"]) == 900 * ONE and _units(row["limit_value"]) == 500 * ONE
    assert row["severity"] == "CRITICAL" and row["symbol"] is None


def test_the_scenario_yields_every_table_and_outcome() -> None:
    rows = [pair for step in scenario() for pair in trading_rows(step.output, step.report)]
    # Cash movements come from oms.cash, not from reports: test_cash_rows below.
    assert {table for table, _ in rows} == set(TABLE_COLUMNS) - {"cash_movements"}
    outcomes = {row["outcome"] for table, row in rows if table == "execution_log"}
    assert outcomes == {"applied", "duplicate", "invalid"}
    for table, row in rows:
        assert set(row) == set(TABLE_COLUMNS[table])


@pytest.mark.parametrize(("changes", "column"), [
    ({"qty": MAX_N18 + 1}, "positions.qty"),
    ({"mark_px": -MAX_N18 - 1}, "positions.mark"),
    ({"realised_16": (MAX_N38 + 1) * ONE}, "positions.realised_pnl"),
    ({"ts_last": MAX_TS_US + 1}, "positions.ts_last"),
    ({"mark_ts": MIN_TS_US - 1}, "positions.mark_ts"),
])
def test_values_beyond_their_column_are_refused_with_the_record(
    changes: dict[str, int], column: str
) -> None:
    with pytest.raises(PgRangeError, match=column) as info:
        position_row(_position(**changes))
    assert "ACC" in str(info.value)


def test_cash_rows_log_the_movement_and_its_verdict() -> None:
    from tapeflow.core.models import CashKind, CashMovement
    from tapeflow.core.trading.account_step import TradingConfig, new_trading_state, on_cash

    movement = CashMovement("m1", "ACC", CashKind.DEPOSIT, 5 * ONE, "USD", T0, "wire")
    _, output, outcome = on_cash(new_trading_state("ACC"), movement, TradingConfig(), {})
    rows = trading_rows(output, cash=(movement, outcome))
    assert [t for t, _ in rows] == ["cash_movements", "accounts"]
    for table, row in rows:
        assert set(row) == set(TABLE_COLUMNS[table])
    log, account = rows[0][1], rows[1][1]
    assert (log["kind"], log["outcome"], _units(log["amount"])) == ("DEPOSIT", "applied", 5 * ONE)
    assert account["currency"] == "USD" and _units(account["net_deposits"]) == 5 * ONE
