"""The trading tables as Arrow columns: `executions`, `cash_movements`, `pnl_snapshots`, `alerts`,
a table a batch.

Why: the row mappers (`sinks.clickhouse.trading_rows`) build one tuple of `Decimal`s per
record, about 5 µs a row, and the flow writes every execution report to the audit trail. Here
each column is one list comprehension over the batch's records and one Arrow array built from
the core's integers (`sinks.clickhouse.arrow_columns`, shared with the market tables: scale-8
units reinterpreted as `decimal128`, so nothing is rounded; timestamps as `timestamp[us,
UTC]`). The result is inserted in one call (`client.insert_arrow`).

Same columns, same values and the same range checks as the row mappers: a value outside its
column raises `RowRangeError` (the writer then finds the record with the row mapper, logs it and
leaves it out). `tests/unit/test_clickhouse_trading_arrow.py` checks the two mappings agree,
and the differential test (tests/integration/test_trading_writes.py) that the stored tables
equal those written row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from sinks.clickhouse.arrow_columns import check_range, strings, times, units, wide
from sinks.clickhouse.rows import MAX_UINT64
from sinks.clickhouse.trading_rows import (
    ALERT_COLUMNS,
    CASH_COLUMNS,
    EXECUTION_COLUMNS,
    PNL_COLUMNS,
)
from sinks.postgres.rows import outcome_fields
from tapeflow.core.models import RiskAlert
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, PnlSnapshot


def _decimals(table: str, column: str, values: list[int | None], money: bool) -> pa.Array:
    """Scale-8 units as Decimal(18, 8) (`money`: Decimal(38, 8)), exactly."""
    return wide(table, column, values) if money else units(table, column, values)


def executions_table(results: Sequence[ExecutionResult]) -> pa.Table:
    """Execution reports with the core's verdicts, as the `executions` table."""
    t = "executions"
    reports = [r.report for r in results]
    verdicts = []
    for result in results:
        outcome = result.output.outcome
        if outcome is None:
            raise ValueError(f"execution {result.report.exec_id} has no outcome")
        verdicts.append(outcome_fields(outcome))

    def dec(column: str, get: Callable[[Any], int | None]) -> pa.Array:
        return _decimals(t, column, [get(r) for r in reports], money=False)

    columns: dict[str, pa.Array] = {
        "exec_id": strings([r.exec_id for r in reports]),
        "order_id": strings([r.order_id for r in reports]),
        "client_order_id": strings([r.client_order_id for r in reports]),
        "account_id": strings([r.account_id for r in reports]),
        "symbol": strings([r.symbol for r in reports]),
        "side": strings([str(r.side) for r in reports]),
        "order_type": strings([str(r.order_type) for r in reports]),
        "exec_type": strings([str(r.exec_type) for r in reports]),
        "ord_status": strings([str(r.ord_status) for r in reports]),
        "order_qty": dec("order_qty", lambda r: r.order_qty),
        "limit_price": dec("limit_price", lambda r: r.limit_price),
        "stop_price": dec("stop_price", lambda r: r.stop_price),
        "last_qty": dec("last_qty", lambda r: r.last_qty),
        "last_px": dec("last_px", lambda r: r.last_px),
        "cum_qty": dec("cum_qty", lambda r: r.cum_qty),
        "leaves_qty": dec("leaves_qty", lambda r: r.leaves_qty),
        "avg_px": dec("avg_px", lambda r: r.avg_px),
        "commission": dec("commission", lambda r: r.commission),
        "reject_reason": strings([r.reject_reason for r in reports]),
        "ts_event": times(t, "ts_event", [r.ts_event for r in reports]),
        "outcome": strings([kind for kind, _ in verdicts]),
        "outcome_detail": strings([detail for _, detail in verdicts]),
        "exec_ref_id": strings([r.exec_ref_id for r in reports]),
    }
    return pa.Table.from_arrays([columns[c] for c in EXECUTION_COLUMNS],
                                names=list(EXECUTION_COLUMNS))


def cash_table(results: Sequence[CashResult]) -> pa.Table:
    """Cash movements with the core's verdicts, as the `cash_movements` table."""
    t = "cash_movements"
    movements = [r.movement for r in results]
    columns: dict[str, pa.Array] = {
        "movement_id": strings([m.movement_id for m in movements]),
        "account_id": strings([m.account_id for m in movements]),
        "kind": strings([str(m.kind) for m in movements]),
        "amount": _decimals(t, "amount", [m.amount for m in movements], money=False),
        "currency": strings([m.currency for m in movements]),
        "ts_event": times(t, "ts_event", [m.ts_event for m in movements]),
        "note": strings([m.note for m in movements]),
        "outcome": strings([r.outcome.kind for r in results]),
        "outcome_detail": strings([r.outcome.reason for r in results]),
    }
    return pa.Table.from_arrays([columns[c] for c in CASH_COLUMNS], names=list(CASH_COLUMNS))


def pnl_table(snaps: Sequence[PnlSnapshot], version_base: int = 0) -> pa.Table:
    """P&L snapshots as the `pnl_snapshots` table; `version_base` is added to every version
    (`sinks.versions.restart_version_base`)."""
    t = "pnl_snapshots"
    versions = [s.version + version_base for s in snaps]
    check_range(t, "version", versions, 0, MAX_UINT64)
    columns: dict[str, pa.Array] = {
        "account_id": strings([s.account_id for s in snaps]),
        "symbol": strings([s.symbol for s in snaps]),
        "ts": times(t, "ts", [s.ts for s in snaps]),
        "qty": _decimals(t, "qty", [s.qty for s in snaps], money=False),
        "avg_px": _decimals(t, "avg_px", [s.avg_px for s in snaps], money=False),
        "mark": _decimals(t, "mark", [s.mark for s in snaps], money=False),
        "realised_pnl": _decimals(t, "realised_pnl", [s.realised_pnl for s in snaps], True),
        "unrealised_pnl": _decimals(t, "unrealised_pnl", [s.unrealised_pnl for s in snaps],
                                    True),
        "cash": _decimals(t, "cash", [s.cash for s in snaps], True),
        "equity": _decimals(t, "equity", [s.equity for s in snaps], True),
        "version": pa.array(versions, type=pa.uint64()),
    }
    return pa.Table.from_arrays([columns[c] for c in PNL_COLUMNS], names=list(PNL_COLUMNS))


def alerts_table(alerts: Sequence[RiskAlert]) -> pa.Table:
    """Risk alerts as the `alerts` table."""
    t = "alerts"
    columns: dict[str, pa.Array] = {
        "alert_id": strings([a.alert_id for a in alerts]),
        "rule": strings([a.rule for a in alerts]),
        "severity": strings([str(a.severity) for a in alerts]),
        "account_id": strings([a.account_id for a in alerts]),
        "symbol": strings([a.symbol for a in alerts]),
        "ts_event": times(t, "ts_event", [a.ts_event for a in alerts]),
        "observed": _decimals(t, "observed", [a.observed for a in alerts], money=True),
        "limit_value": _decimals(t, "limit_value", [a.limit for a in alerts], money=True),
        "message": strings([a.message for a in alerts]),
        "source_event_id": strings([a.source_event_id for a in alerts]),
        "unit": strings([None if a.unit is None else str(a.unit) for a in alerts]),
    }
    return pa.Table.from_arrays([columns[c] for c in ALERT_COLUMNS], names=list(ALERT_COLUMNS))
