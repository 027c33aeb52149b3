"""The order lifecycle: FIX 4.4 ExecutionReport semantics as an explicit transition table.

Every report is judged against the order's current state and classified as exactly one of:

* `Applied`: the state machine allows it and its quantities are consistent; the new order
  state is returned, with a `Fill` for an execution and a `Correction` for a trade cancel
  or correct, which positions consume.
* `Duplicate`: the exec_id was already applied to this order (redelivery: Kafka, a Bytewax
  replay after recovery). Nothing changes. This is what makes at-least-once delivery count
  every fill once.
* `Invalid`: the report breaks the state machine or is inconsistent. Nothing changes; the
  caller logs it and raises an alert (docs/trading-core.md, "Orders").

Decisions, with the reason for each:

* The table (`order_table.TRANSITIONS`) is keyed by the order's own status and the report's
  ExecType (tag 150); handlers check the quantities and the report's OrdStatus (tag 39)
  against the status they derive. Trusting the OMS's status blindly would let one malformed
  report move an order backwards; refusing it makes the disagreement visible as an alert.
* A pending cancel or replace is held beside the status (`OrderState.pending`), because FIX
  reports a fill during it as ExecType Trade with OrdStatus Pending Cancel/Replace (the
  pending status takes precedence, Appendix D scenarios D4, D5, D7, D13). A later report
  whose OrdStatus is not the pending one tells that the request was refused (a Cancel Reject
  is not an ExecutionReport), so the pending state ends there.
* Only NEW, PENDING_NEW or REJECTED may be the first report of an order. Anything else refers
  to an order we never saw acknowledged: invalid, not applied (no position from nowhere).
* Executions must be self-consistent: cum_qty = previous cum_qty + last_qty, leaves_qty =
  order_qty - cum_qty. A cum_qty gap (a missed report) is refused rather than guessed at;
  reconciliation against the OMS is the remedy, and the alert says so.
* A redelivered exec_id is a duplicate whatever it says. A *new* exec_id whose cum_qty does
  not advance while last_qty > 0 is inconsistent (a redelivery repeats its exec_id): invalid,
  with an alert, never silently dropped as a duplicate. The one exception is an exec_id older
  than the remembered window (below), which cannot be told from a redelivery: a fill whose
  cum_qty is at or below what the order had filled when that window started is a duplicate.
* Trade Cancel (H) and Trade Correct (G) name the execution they bust or correct in
  `exec_ref_id`; it must be an execution in effect on this order (a correction of a
  correction names the correction, scenario D34). They may arrive after the order ended
  (FILLED, CANCELED, EXPIRED, done for the day), and a bust can re-open a filled order.
* Each order remembers the exec_ids it applied and the executions in effect, at most
  `MAX_EXEC_IDS_PER_ORDER` each (the most recent). Orders end, so this is per-order bounded
  memory.
* The order's avg_px is computed here from the executions (exact notional at scale 16,
  divided half-even to scale 8), not copied from the report, so it agrees with positions.
* Messages print quantities and prices as decimals (`fixedpoint.fmt`), never scale-8 units.
"""

from __future__ import annotations

from tapeflow.core.fixedpoint import fmt
from tapeflow.core.models import ExecType, ExecutionReport
from tapeflow.core.trading.order_state import (
    CORRECTION_TYPES,
    FILL_TYPES,
    MAX_EXEC_IDS_PER_ORDER,
    PENDING_STATUSES,
    TERMINAL_STATUSES,
    Applied,
    Correction,
    Duplicate,
    Fill,
    Invalid,
    OrderState,
    Outcome,
    TradeRecord,
)
from tapeflow.core.trading.order_table import TRANSITIONS, Transition

__all__ = [
    "CORRECTION_TYPES",
    "FILL_TYPES",
    "MAX_EXEC_IDS_PER_ORDER",
    "PENDING_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Applied",
    "Correction",
    "Duplicate",
    "Fill",
    "Invalid",
    "OrderState",
    "Outcome",
    "TradeRecord",
    "Transition",
    "fill_of",
    "transition",
]


def transition(
    order: OrderState | None, report: ExecutionReport
) -> tuple[OrderState | None, Outcome]:
    """Apply one report to one order (None if the order is unknown)."""
    oid, xid = report.order_id, report.exec_id
    if order is not None:
        if report.order_id != order.order_id:
            return order, Invalid(oid, xid, f"report is for order {oid}, not {order.order_id}")
        if xid in order.exec_ids:
            return order, Duplicate(oid, xid, "exec_id already applied")
        for field in ("account_id", "symbol", "side"):
            if getattr(report, field) != getattr(order, field):
                return order, Invalid(oid, xid, f"{field} differs from the order's")
        if report.exec_type in FILL_TYPES and report.cum_qty <= order.cum_qty:
            if report.cum_qty <= order.forgotten_cum:
                return order, Duplicate(oid, xid, f"cum_qty {fmt(report.cum_qty)} does not "
                                        "advance (an exec_id older than the ones remembered)")
            if report.last_qty > 0:
                return order, Invalid(oid, xid, (
                    f"new exec_id whose cum_qty {fmt(report.cum_qty)} does not advance past "
                    f"{fmt(order.cum_qty)} with last_qty {fmt(report.last_qty)}: inconsistent "
                    "(a redelivery repeats its exec_id)"))
    if report.order_qty <= 0 or min(report.cum_qty, report.leaves_qty, report.last_qty) < 0:
        return order, Invalid(oid, xid, "non-positive order_qty or negative quantity")
    status = order.status if order is not None else None
    edge = TRANSITIONS.get((status, report.exec_type))
    if edge is None:
        if order is None:
            return order, Invalid(oid, xid, f"{report.exec_type} refers to an unknown order")
        return order, Invalid(oid, xid, f"{report.exec_type} not allowed in status {status}")
    result = edge.handler(order, report)
    if isinstance(result, str):
        return order, Invalid(oid, xid, result)
    exec_type = report.exec_type
    if exec_type in FILL_TYPES:
        return result, Applied(result, _fill_of(report))
    if exec_type in CORRECTION_TYPES:
        return result, Applied(result, None, _correction_of(order, result, report))
    return result, Applied(result, None)


def fill_of(report: ExecutionReport, qty: int, price: int, commission: int) -> Fill:
    return Fill(report.exec_id, report.order_id, report.account_id, report.symbol, report.side,
                qty, price, commission, report.ts_event)


def _fill_of(report: ExecutionReport) -> Fill | None:
    if report.exec_type not in FILL_TYPES:
        return None
    assert report.last_px is not None
    return fill_of(report, report.last_qty, report.last_px, report.commission or 0)


def _correction_of(before: OrderState | None, after: OrderState,
                   report: ExecutionReport) -> Correction | None:
    if report.exec_type not in CORRECTION_TYPES:
        return None
    assert before is not None and report.exec_ref_id is not None
    old = next(t for t in before.trades if t.exec_id == report.exec_ref_id)
    new = None
    if report.exec_type == ExecType.TRADE_CORRECT:
        record = after.trades[-1]
        new = fill_of(report, record.qty, record.price, record.commission)
    return Correction(report.exec_id, report.exec_ref_id, report.account_id, report.symbol,
                      report.side, old, new, report.ts_event)
