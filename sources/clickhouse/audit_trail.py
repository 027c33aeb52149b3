"""The audit trail (ClickHouse `executions`, `cash_movements`) read back as core values.

For the end-of-day reconciliation (`jobs.reconcile`), which rebuilds positions and cash from
these reports alone. Conversions are exact: ClickHouse `Decimal(18, 8)` arrives as `Decimal`
and becomes scale-8 units through `fixedpoint.to_units` (exact, never rounded); DateTime64(6)
arrives as integer microseconds (clickhouse-connect's "int" format), the core's own unit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from schemas.sql_files import statement
from tapeflow.core.fixedpoint import to_units
from tapeflow.core.models import (
    CashKind,
    CashMovement,
    ExecType,
    ExecutionReport,
    OrderType,
    OrdStatus,
    Side,
)

QUERIES = "queries/reconcile_clickhouse.sql"


def _units(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def to_report(row: Mapping[str, Any]) -> ExecutionReport:
    """One `executions` row (column name -> value) as the report the OMS sent."""
    return ExecutionReport(
        exec_id=row["exec_id"], order_id=row["order_id"],
        client_order_id=row["client_order_id"], account_id=row["account_id"],
        symbol=row["symbol"], side=Side(row["side"]), order_type=OrderType(row["order_type"]),
        exec_type=ExecType(row["exec_type"]), ord_status=OrdStatus(row["ord_status"]),
        order_qty=to_units(row["order_qty"]), limit_price=_units(row["limit_price"]),
        stop_price=_units(row["stop_price"]), last_qty=to_units(row["last_qty"]),
        last_px=_units(row["last_px"]), cum_qty=to_units(row["cum_qty"]),
        leaves_qty=to_units(row["leaves_qty"]), avg_px=_units(row["avg_px"]),
        commission=_units(row["commission"]), reject_reason=row["reject_reason"],
        ts_event=int(row["ts_event"]), exec_ref_id=row.get("exec_ref_id"),
    )


def to_movement(row: Mapping[str, Any]) -> CashMovement:
    """One `cash_movements` row as the movement received."""
    return CashMovement(
        movement_id=row["movement_id"], account_id=row["account_id"],
        kind=CashKind(row["kind"]), amount=to_units(row["amount"]), currency=row["currency"],
        ts_event=int(row["ts_event"]), note=row["note"])


def read_reports(client: Any) -> Iterator[ExecutionReport]:
    """Every report of the audit trail, one per (account_id, exec_id)."""
    result = client.query(statement(QUERIES, "audit_trail"),
                          query_formats={"DateTime64*": "int"})
    for row in result.named_results():
        yield to_report(row)


def read_movements(client: Any) -> Iterator[CashMovement]:
    """Every cash movement of the audit trail, one per (account_id, movement_id)."""
    result = client.query(statement(QUERIES, "cash_movements"),
                          query_formats={"DateTime64*": "int"})
    for row in result.named_results():
        yield to_movement(row)
