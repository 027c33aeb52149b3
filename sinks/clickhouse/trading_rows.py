"""Trading records as ClickHouse rows: `executions`, `cash_movements`, `pnl_snapshots`,
`alerts`.

Pure mappers in the manner of `sinks.clickhouse.rows` (same conversions, same range checks:
timestamps as integer microseconds, decimals exact and checked against their column, see
docs/stores.md). Every row is a tuple in the order of its table's column list.

Idempotence comes from the tables' keys (schemas/clickhouse/0001_init.sql):
- `executions`: ReplacingMergeTree ORDER BY (account_id, exec_id), so a replayed report is
  one row. The outcome is the core's verdict, which a replay repeats.
- `pnl_snapshots`: ReplacingMergeTree(version) ORDER BY (account_id, symbol, ts); `ts` is an
  event-time bucket end (`tapeflow.core.trading.shard_step`), `version` the account's or position's.
- `alerts`: ReplacingMergeTree ORDER BY alert_id, and alert ids are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from sinks.clickhouse.rows import MAX_D38, VOLUME, DecimalType, Row, _dec, _price, _ts, _uint64
from sinks.postgres.rows import outcome_fields
from tapeflow.core.models import RiskAlert
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, PnlSnapshot

EXECUTION_COLUMNS = (
    "exec_id", "order_id", "client_order_id", "account_id", "symbol", "side", "order_type",
    "exec_type", "ord_status", "order_qty", "limit_price", "stop_price", "last_qty", "last_px",
    "cum_qty", "leaves_qty", "avg_px", "commission", "reject_reason", "ts_event", "outcome",
    "outcome_detail", "exec_ref_id",
)
CASH_COLUMNS = (
    "movement_id", "account_id", "kind", "amount", "currency", "ts_event", "note", "outcome",
    "outcome_detail",
)
PNL_COLUMNS = (
    "account_id", "symbol", "ts", "qty", "avg_px", "mark", "realised_pnl", "unrealised_pnl",
    "cash", "equity", "version",
)
ALERT_COLUMNS = (
    "alert_id", "rule", "severity", "account_id", "symbol", "ts_event", "observed",
    "limit_value", "message", "source_event_id", "unit",
)

TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "executions": EXECUTION_COLUMNS,
    "cash_movements": CASH_COLUMNS,
    "pnl_snapshots": PNL_COLUMNS,
    "alerts": ALERT_COLUMNS,
})

MONEY = DecimalType("Decimal(38, 8)", MAX_D38, VOLUME.scale)


def _opt_price(table: str, column: str, units: int | None, record: object) -> Any:
    return None if units is None else _price(table, column, units, record)


def execution_row(result: ExecutionResult) -> Row:
    """An execution report with the core's verdict on it, for `executions`."""
    t, r = "executions", result.report
    outcome = result.output.outcome
    if outcome is None:
        raise ValueError(f"execution {r.exec_id} has no outcome")
    kind, detail = outcome_fields(outcome)
    return (
        r.exec_id, r.order_id, r.client_order_id, r.account_id, r.symbol, str(r.side),
        str(r.order_type), str(r.exec_type), str(r.ord_status),
        _price(t, "order_qty", r.order_qty, r),
        _opt_price(t, "limit_price", r.limit_price, r),
        _opt_price(t, "stop_price", r.stop_price, r),
        _price(t, "last_qty", r.last_qty, r),
        _opt_price(t, "last_px", r.last_px, r),
        _price(t, "cum_qty", r.cum_qty, r),
        _price(t, "leaves_qty", r.leaves_qty, r),
        _opt_price(t, "avg_px", r.avg_px, r),
        _opt_price(t, "commission", r.commission, r),
        r.reject_reason,
        _ts(t, "ts_event", r.ts_event, r),
        kind,
        detail,
        r.exec_ref_id,
    )


def cash_row(result: CashResult) -> Row:
    """A cash movement with the core's verdict on it, for `cash_movements`."""
    t, m = "cash_movements", result.movement
    return (
        m.movement_id, m.account_id, str(m.kind), _price(t, "amount", m.amount, m), m.currency,
        _ts(t, "ts_event", m.ts_event, m), m.note, result.outcome.kind, result.outcome.reason,
    )


def pnl_row(snap: PnlSnapshot) -> Row:
    """A P&L snapshot row for `pnl_snapshots`."""
    t = "pnl_snapshots"
    return (
        snap.account_id, snap.symbol,
        _ts(t, "ts", snap.ts, snap),
        _price(t, "qty", snap.qty, snap),
        _price(t, "avg_px", snap.avg_px, snap),
        _opt_price(t, "mark", snap.mark, snap),
        _dec(t, "realised_pnl", snap.realised_pnl, MONEY, snap),
        _dec(t, "unrealised_pnl", snap.unrealised_pnl, MONEY, snap),
        _dec(t, "cash", snap.cash, MONEY, snap),
        _dec(t, "equity", snap.equity, MONEY, snap),
        _uint64(t, "version", snap.version, snap),
    )


def alert_row(alert: RiskAlert) -> Row:
    """A risk alert for `alerts`."""
    t = "alerts"
    return (
        alert.alert_id, alert.rule, str(alert.severity), alert.account_id, alert.symbol,
        _ts(t, "ts_event", alert.ts_event, alert),
        None if alert.observed is None else _dec(t, "observed", alert.observed, MONEY, alert),
        None if alert.limit is None else _dec(t, "limit_value", alert.limit, MONEY, alert),
        alert.message, alert.source_event_id, None if alert.unit is None else str(alert.unit),
    )


_BY_TYPE: Mapping[type, Callable[[Any], tuple[str, Row]]] = MappingProxyType({
    ExecutionResult: lambda r: ("executions", execution_row(r)),
    CashResult: lambda r: ("cash_movements", cash_row(r)),
    PnlSnapshot: lambda r: ("pnl_snapshots", pnl_row(r)),
    RiskAlert: lambda r: ("alerts", alert_row(r)),
})


def to_row(record: ExecutionResult | CashResult | PnlSnapshot | RiskAlert) -> tuple[str, Row]:
    """(table, row) for a trading record the ClickHouse sink stores."""
    mapper = _BY_TYPE.get(type(record))
    if mapper is None:
        raise TypeError(f"no ClickHouse trading table for {type(record).__name__} records")
    return mapper(record)
