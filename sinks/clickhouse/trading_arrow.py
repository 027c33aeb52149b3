"""The trading tables as Arrow columns: `executions`, `cash_movements`, `pnl_snapshots`, `alerts`,
a table a batch.

Why: the row mappers (`sinks.clickhouse.trading_rows`) build one tuple of `Decimal`s per
record, about 5 µs a row, and the flow writes every execution report to the audit trail. Here
each column is one list comprehension over the batch's records and one Arrow array built from
the core's integers: scale-8 units become `decimal128` by reinterpreting them (the value is the
unscaled integer, so nothing is rounded), timestamps are the integer microseconds as
`timestamp[us, UTC]` (ClickHouse's DateTime64(6, 'UTC')), strings stay strings. The result is
inserted in one call (`client.insert_arrow`).

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

from sinks.clickhouse.rows import MAX_D18, MAX_D38, MAX_UINT64, RowRangeError
from sinks.clickhouse.trading_rows import (
    ALERT_COLUMNS,
    CASH_COLUMNS,
    EXECUTION_COLUMNS,
    PNL_COLUMNS,
)
from sinks.postgres.rows import outcome_fields
from tapeflow.core.fixedpoint import SCALE, to_decimal
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, RiskAlert
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, PnlSnapshot

TIMESTAMP = pa.timestamp("us", tz="UTC")
PRICE = pa.decimal128(18, SCALE)
MONEY = pa.decimal128(38, SCALE)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _check(table: str, column: str, values: Sequence[int | None], low: int, high: int) -> None:
    present = [v for v in values if v is not None]
    if present and (min(present) < low or max(present) > high):
        bad = next(v for v in present if not low <= v <= high)
        raise RowRangeError(f"{table}.{column} = {bad} is outside [{low}, {high}]")


def _decimals(table: str, column: str, values: list[int | None], money: bool) -> pa.Array:
    """Scale-8 units as Decimal(18, 8) (`money`: Decimal(38, 8)), exactly."""
    limit = MAX_D38 if money else MAX_D18
    _check(table, column, values, -limit, limit)
    present = [v for v in values if v is not None]
    if present and (min(present) < _INT64_MIN or max(present) > _INT64_MAX):
        # Beyond int64 (only money can be): exact Decimals, the slow way.
        return pa.array([None if v is None else to_decimal(v) for v in values], type=MONEY)
    ints = pa.array(values, type=pa.int64())
    if money:
        return ints.cast(pa.decimal128(38, 0)).view(MONEY)
    return ints.cast(pa.decimal128(19, 0)).view(pa.decimal128(19, SCALE)).cast(PRICE)


def _times(table: str, column: str, values: list[int]) -> pa.Array:
    _check(table, column, values, EVENT_TIME_MIN_US, EVENT_TIME_MAX_US)
    return pa.array(values, type=TIMESTAMP)


def _strings(values: list[Any]) -> pa.Array:
    return pa.array(values, type=pa.string())


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
        "exec_id": _strings([r.exec_id for r in reports]),
        "order_id": _strings([r.order_id for r in reports]),
        "client_order_id": _strings([r.client_order_id for r in reports]),
        "account_id": _strings([r.account_id for r in reports]),
        "symbol": _strings([r.symbol for r in reports]),
        "side": _strings([str(r.side) for r in reports]),
        "order_type": _strings([str(r.order_type) for r in reports]),
        "exec_type": _strings([str(r.exec_type) for r in reports]),
        "ord_status": _strings([str(r.ord_status) for r in reports]),
        "order_qty": dec("order_qty", lambda r: r.order_qty),
        "limit_price": dec("limit_price", lambda r: r.limit_price),
        "stop_price": dec("stop_price", lambda r: r.stop_price),
        "last_qty": dec("last_qty", lambda r: r.last_qty),
        "last_px": dec("last_px", lambda r: r.last_px),
        "cum_qty": dec("cum_qty", lambda r: r.cum_qty),
        "leaves_qty": dec("leaves_qty", lambda r: r.leaves_qty),
        "avg_px": dec("avg_px", lambda r: r.avg_px),
        "commission": dec("commission", lambda r: r.commission),
        "reject_reason": _strings([r.reject_reason for r in reports]),
        "ts_event": _times(t, "ts_event", [r.ts_event for r in reports]),
        "outcome": _strings([kind for kind, _ in verdicts]),
        "outcome_detail": _strings([detail for _, detail in verdicts]),
        "exec_ref_id": _strings([r.exec_ref_id for r in reports]),
    }
    return pa.Table.from_arrays([columns[c] for c in EXECUTION_COLUMNS],
                                names=list(EXECUTION_COLUMNS))


def cash_table(results: Sequence[CashResult]) -> pa.Table:
    """Cash movements with the core's verdicts, as the `cash_movements` table."""
    t = "cash_movements"
    movements = [r.movement for r in results]
    columns: dict[str, pa.Array] = {
        "movement_id": _strings([m.movement_id for m in movements]),
        "account_id": _strings([m.account_id for m in movements]),
        "kind": _strings([str(m.kind) for m in movements]),
        "amount": _decimals(t, "amount", [m.amount for m in movements], money=False),
        "currency": _strings([m.currency for m in movements]),
        "ts_event": _times(t, "ts_event", [m.ts_event for m in movements]),
        "note": _strings([m.note for m in movements]),
        "outcome": _strings([r.outcome.kind for r in results]),
        "outcome_detail": _strings([r.outcome.reason for r in results]),
    }
    return pa.Table.from_arrays([columns[c] for c in CASH_COLUMNS], names=list(CASH_COLUMNS))


def pnl_table(snaps: Sequence[PnlSnapshot], version_base: int = 0) -> pa.Table:
    """P&L snapshots as the `pnl_snapshots` table; `version_base` is added to every version
    (`sinks.versions.restart_version_base`)."""
    t = "pnl_snapshots"
    versions = [s.version + version_base for s in snaps]
    _check(t, "version", versions, 0, MAX_UINT64)
    columns: dict[str, pa.Array] = {
        "account_id": _strings([s.account_id for s in snaps]),
        "symbol": _strings([s.symbol for s in snaps]),
        "ts": _times(t, "ts", [s.ts for s in snaps]),
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
        "alert_id": _strings([a.alert_id for a in alerts]),
        "rule": _strings([a.rule for a in alerts]),
        "severity": _strings([str(a.severity) for a in alerts]),
        "account_id": _strings([a.account_id for a in alerts]),
        "symbol": _strings([a.symbol for a in alerts]),
        "ts_event": _times(t, "ts_event", [a.ts_event for a in alerts]),
        "observed": _decimals(t, "observed", [a.observed for a in alerts], money=True),
        "limit_value": _decimals(t, "limit_value", [a.limit for a in alerts], money=True),
        "message": _strings([a.message for a in alerts]),
        "source_event_id": _strings([a.source_event_id for a in alerts]),
        "unit": _strings([None if a.unit is None else str(a.unit) for a in alerts]),
    }
    return pa.Table.from_arrays([columns[c] for c in ALERT_COLUMNS], names=list(ALERT_COLUMNS))


def warm_up() -> None:
    """Build one tiny batch, so pyarrow's lazy start (its first cast imports pandas: about 3 s
    on this machine, which runs without bytecode caches) happens now, not at the flow's
    first flush, where it would hold the interpreter, and the flow's worker with it."""
    _decimals("warm_up", "x", [1, None], money=False)
    _decimals("warm_up", "x", [1, None], money=True)
