"""Trading-core records as Postgres rows: pure mappers, one column list per table.

Why a separate, pure module: the mapping is where exactness is won or lost, so it is tested
without a store (tests/unit/test_postgres_rows.py), and the statements in
`schemas/postgres/statements.sql` bind exactly these keys (a test checks they agree).

Conversions, and why:

- Numbers: the core's scale-8 integers become `Decimal`s exactly (`fixedpoint.to_decimal`),
  which psycopg sends as NUMERIC text, so no float is ever involved. Postgres refuses a
  value beyond a column's precision with a DataError, which would fail the whole batch
  without naming the record; so each value is checked here against its column
  (`PgRangeError` names table, column, value and key) and a bad record never enters a
  writer's buffer, where it would block every later flush.
- Timestamps: the core's integer microseconds become timezone-aware UTC `datetime`s built by
  integer arithmetic (epoch + timedelta), exact to the microsecond, which is TIMESTAMPTZ's
  resolution. A naive datetime would be read in the session's time zone; an aware one never
  is. Values outside Python's datetime range (years 1..9999) raise `PgRangeError`.
- Scale-16 money (positions, accounts) is shown at scale 8 half-even, as the core's own
  scale-8 views (`Position.realised_pnl`, `AccountState.cash`, ...) round it: the stores show
  what the wire shows.

Rows are dicts keyed by column name, matching the statements' named parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from tapeflow.core.fixedpoint import SCALE, to_decimal
from tapeflow.core.models import CashMovement, ExecutionReport, RiskAlert
from tapeflow.core.trading.account_step import TradingOutput
from tapeflow.core.trading.cash import CashOutcome
from tapeflow.core.trading.orders import Applied, Duplicate, Invalid, OrderState, Outcome
from tapeflow.core.trading.positions import AccountState, Position
from tapeflow.errors import TapeflowError

Row = dict[str, Any]

ORDER_COLUMNS = (
    "order_id", "client_order_id", "account_id", "symbol", "side", "order_type", "order_qty",
    "limit_price", "stop_price", "cum_qty", "leaves_qty", "avg_px", "status", "last_exec_id",
    "ts_created", "ts_last", "version",
)
POSITION_COLUMNS = (
    "account_id", "symbol", "qty", "avg_px", "realised_pnl", "unrealised_pnl", "commissions",
    "mark", "mark_ts", "opened_ts", "ts_last", "version",
)
ACCOUNT_COLUMNS = (
    "account_id", "cash", "realised_pnl", "unrealised_pnl", "commissions", "equity",
    "peak_equity", "ts_last", "version", "currency", "net_deposits", "fees",
)
EXECUTION_COLUMNS = (
    "exec_id", "order_id", "account_id", "symbol", "exec_type", "ord_status", "last_qty",
    "last_px", "commission", "outcome", "outcome_detail", "ts_event", "exec_ref_id",
)
ALERT_COLUMNS = (
    "alert_id", "rule", "severity", "account_id", "symbol", "ts_event", "observed",
    "limit_value", "message", "source_event_id", "unit",
)
CASH_COLUMNS = (
    "movement_id", "account_id", "kind", "amount", "currency", "ts_event", "note", "outcome",
    "outcome_detail",
)

TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "orders": ORDER_COLUMNS,
    "positions": POSITION_COLUMNS,
    "accounts": ACCOUNT_COLUMNS,
    "execution_log": EXECUTION_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "cash_movements": CASH_COLUMNS,
})
"""Table -> the keys of its rows; the order in which a writer flushes the tables."""

TABLE_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "orders": ("order_id",),
    "positions": ("account_id", "symbol"),
    "accounts": ("account_id",),
    "execution_log": ("exec_id",),
    "alerts": ("alert_id",),
    "cash_movements": ("movement_id",),
})
"""Table -> its primary key columns (schemas/postgres/0001_init.sql)."""

VERSIONED_TABLES = frozenset({"orders", "positions", "accounts"})
"""Tables whose rows carry a monotonic `version`; the others keep the first row per key."""

# Column ranges as unscaled scale-8 integers: what 0001_init.sql declares.
MAX_N18 = 10**18 - 1
"""NUMERIC(18, 8): prices, quantities."""
MAX_N38 = 10**38 - 1
"""NUMERIC(38, 8): money and sums."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TS_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
MAX_TS_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(
    microseconds=1
)

OUTCOME_APPLIED, OUTCOME_DUPLICATE, OUTCOME_INVALID = "applied", "duplicate", "invalid"


class PgRangeError(TapeflowError, ValueError):
    """A value does not fit its Postgres column; the message names table, column and record."""


def _num(units: int | None, table: str, column: str, key: object, limit: int = MAX_N18
         ) -> Decimal | None:
    if units is None:
        return None
    if abs(units) > limit:
        digits = len(str(limit))
        raise PgRangeError(
            f"{table}.{column} = {to_decimal(units)} does not fit NUMERIC({digits}, {SCALE}) "
            f"(record {key})"
        )
    return to_decimal(units)


def to_datetime(ts_us: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=ts_us)


def to_micros(value: datetime) -> int:
    """The inverse of `to_datetime` for an aware datetime (any zone), exactly."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: its time zone is unknown")
    return (value - _EPOCH) // timedelta(microseconds=1)


def _ts(ts_us: int | None, table: str, column: str, key: object) -> datetime | None:
    if ts_us is None:
        return None
    if not MIN_TS_US <= ts_us <= MAX_TS_US:
        raise PgRangeError(
            f"{table}.{column} = {ts_us} µs is outside years 1..9999 (record {key})"
        )
    return to_datetime(ts_us)


def order_row(order: OrderState) -> Row:
    """`orders`: the order's current state; `last_exec_id` is the last report applied."""
    t, k = "orders", order.order_id
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "order_type": str(order.order_type),
        "order_qty": _num(order.order_qty, t, "order_qty", k),
        "limit_price": _num(order.limit_price, t, "limit_price", k),
        "stop_price": _num(order.stop_price, t, "stop_price", k),
        "cum_qty": _num(order.cum_qty, t, "cum_qty", k),
        "leaves_qty": _num(order.leaves_qty, t, "leaves_qty", k),
        "avg_px": _num(order.avg_px, t, "avg_px", k),
        "status": str(order.ord_status),
        "last_exec_id": order.exec_ids[-1] if order.exec_ids else "",
        "ts_created": _ts(order.ts_created, t, "ts_created", k),
        "ts_last": _ts(order.ts_last, t, "ts_last", k),
        "version": order.version,
    }


def position_row(position: Position) -> Row:
    """`positions`: scale-8 views of the exact position; `avg_px` NULL when flat."""
    t, k = "positions", (position.account_id, position.symbol)
    return {
        "account_id": position.account_id,
        "symbol": position.symbol,
        "qty": _num(position.qty, t, "qty", k),
        "avg_px": _num(position.avg_cost, t, "avg_px", k),
        "realised_pnl": _num(position.realised_pnl, t, "realised_pnl", k, MAX_N38),
        "unrealised_pnl": _num(position.unrealised_pnl, t, "unrealised_pnl", k, MAX_N38),
        "commissions": _num(position.commissions, t, "commissions", k, MAX_N38),
        "mark": _num(position.mark_px, t, "mark", k),
        "mark_ts": _ts(position.mark_ts, t, "mark_ts", k),
        "opened_ts": _ts(position.opened_ts, t, "opened_ts", k),
        "ts_last": _ts(position.ts_last, t, "ts_last", k),
        "version": position.version,
    }


def account_row(account: AccountState) -> Row:
    """`accounts`: cash, P&L, equity and peak equity at scale 8, half-even."""
    t, k = "accounts", account.account_id
    return {
        "account_id": account.account_id,
        "cash": _num(account.cash, t, "cash", k, MAX_N38),
        "realised_pnl": _num(account.realised_pnl, t, "realised_pnl", k, MAX_N38),
        "unrealised_pnl": _num(account.unrealised_pnl, t, "unrealised_pnl", k, MAX_N38),
        "commissions": _num(account.commissions, t, "commissions", k, MAX_N38),
        "equity": _num(account.equity, t, "equity", k, MAX_N38),
        "peak_equity": _num(account.peak_equity, t, "peak_equity", k, MAX_N38),
        "ts_last": _ts(account.ts_last, t, "ts_last", k),
        "version": account.version,
        "currency": account.currency,
        "net_deposits": _num(account.net_deposits, t, "net_deposits", k, MAX_N38),
        "fees": _num(account.fees, t, "fees", k, MAX_N38),
    }


def outcome_fields(outcome: Outcome) -> tuple[str, str]:
    """(outcome, detail) for the log: the reason of a duplicate or an invalid report."""
    if isinstance(outcome, Applied):
        return OUTCOME_APPLIED, ""
    if isinstance(outcome, Duplicate):
        return OUTCOME_DUPLICATE, outcome.reason
    if isinstance(outcome, Invalid):
        return OUTCOME_INVALID, outcome.reason
    raise TypeError(f"not an order outcome: {outcome!r}")


def execution_row(report: ExecutionReport, outcome: Outcome) -> Row:
    """`execution_log`: one row per exec_id with what the core made of the report."""
    t, k = "execution_log", report.exec_id
    kind, detail = outcome_fields(outcome)
    if _about(outcome) != (report.order_id, report.exec_id):
        raise ValueError(f"outcome {_about(outcome)} is not about report {report.exec_id}")
    return {
        "exec_id": report.exec_id,
        "order_id": report.order_id,
        "account_id": report.account_id,
        "symbol": report.symbol,
        "exec_type": str(report.exec_type),
        "ord_status": str(report.ord_status),
        "last_qty": _num(report.last_qty, t, "last_qty", k),
        "last_px": _num(report.last_px, t, "last_px", k),
        "commission": _num(report.commission, t, "commission", k),
        "outcome": kind,
        "outcome_detail": detail,
        "ts_event": _ts(report.ts_event, t, "ts_event", k),
        "exec_ref_id": report.exec_ref_id,
    }


def _about(outcome: Outcome) -> tuple[str, str]:
    """(order_id, exec_id) of the report an outcome judged."""
    if isinstance(outcome, Applied):
        order = outcome.order
        return order.order_id, order.exec_ids[-1] if order.exec_ids else ""
    return outcome.order_id, outcome.exec_id


def alert_row(alert: RiskAlert) -> Row:
    """`alerts`: the alert without acknowledgement columns, which belong to operators."""
    t, k = "alerts", alert.alert_id
    return {
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "severity": str(alert.severity),
        "account_id": alert.account_id,
        "symbol": alert.symbol,
        "ts_event": _ts(alert.ts_event, t, "ts_event", k),
        "observed": _num(alert.observed, t, "observed", k, MAX_N38),
        "limit_value": _num(alert.limit, t, "limit_value", k, MAX_N38),
        "message": alert.message,
        "source_event_id": alert.source_event_id,
        "unit": None if alert.unit is None else str(alert.unit),
    }


def cash_row(movement: CashMovement, outcome: CashOutcome) -> Row:
    """`cash_movements`: one row per movement_id with what the core made of it."""
    t, k = "cash_movements", movement.movement_id
    return {
        "movement_id": movement.movement_id,
        "account_id": movement.account_id,
        "kind": str(movement.kind),
        "amount": _num(movement.amount, t, "amount", k),
        "currency": movement.currency,
        "ts_event": _ts(movement.ts_event, t, "ts_event", k),
        "note": movement.note,
        "outcome": outcome.kind,
        "outcome_detail": outcome.reason,
    }


def trading_rows(output: TradingOutput, report: ExecutionReport | None = None,
                 cash: tuple[CashMovement, CashOutcome] | None = None) -> list[tuple[str, Row]]:
    """Every row one trading step produces, as (table, row): the log row (when `report` is
    the report that produced `output.outcome`, or `cash` the movement and its outcome), then
    order, position, account and alerts."""
    rows: list[tuple[str, Row]] = []
    if output.outcome is not None and report is not None:
        rows.append(("execution_log", execution_row(report, output.outcome)))
    if cash is not None:
        rows.append(("cash_movements", cash_row(*cash)))
    if output.order is not None:
        rows.append(("orders", order_row(output.order)))
    if output.position is not None:
        rows.append(("positions", position_row(output.position)))
    if output.account is not None:
        rows.append(("accounts", account_row(output.account)))
    rows.extend(("alerts", alert_row(alert)) for alert in output.alerts)
    return rows
