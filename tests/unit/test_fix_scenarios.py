"""FIX 4.4 order state change matrices (Volume 4, Appendix D) replayed through the trading
core, report by report, with the order, the position and the cash expected after each.

Each table is one scenario, named by its reference in the appendix's list (D1, D2, ...): the
rows are the execution reports the sell side sends (ExecType, OrdStatus, OrderQty, CumQty,
LeavesQty, LastQty, LastPx and, for busts and corrections, ExecRefID), in FIX 4.4 form
(ExecType Trade where FIX 4.2 wrote Partial fill / Fill). Requests the buy side sends and
Cancel Rejects are not execution reports and have no row. One buy order o1 (limit 200) of
account ACC in XYZ; the account starts with 1,000,000 of cash and pays no commission, so
cash = 1,000,000 - the notional of the executions in effect.

After each row: the verdict (applied or invalid), the order's FIX OrdStatus (a pending
request taking precedence), its cum_qty and leaves_qty, the position's quantity and average
cost, and the account's cash. The tables are the expectations, in the units a back office
reads (decimals); nothing here is derived from the code under test.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import pytest

from tapeflow.core.fixedpoint import to_decimal
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingState,
    new_trading_state,
    on_execution,
)
from tapeflow.core.trading.orders import Applied, Invalid
from tests.support.trading_builders import T0, u

E = ExecType
S = OrdStatus
CASH = 1_000_000


class Row(NamedTuple):
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    order_qty: int
    cum_qty: int
    leaves_qty: int
    last_qty: int
    last_px: int | str
    ref: str | None
    # expected after the row
    verdict: str
    status: OrdStatus | None
    position: int
    avg_px: str | None
    cash: str


def _report(row: Row, i: int) -> ExecutionReport:
    px = u(row.last_px) if row.last_px else None
    return ExecutionReport(
        exec_id=row.exec_id, order_id="o1", client_order_id="c1", account_id="ACC",
        symbol="XYZ", side=Side.BUY, order_type=OrderType.LIMIT, exec_type=row.exec_type,
        ord_status=row.ord_status, order_qty=u(row.order_qty), limit_price=u(200),
        stop_price=None, last_qty=u(row.last_qty), last_px=px, cum_qty=u(row.cum_qty),
        leaves_qty=u(row.leaves_qty), avg_px=None, commission=None, reject_reason=None,
        ts_event=T0 + i * 1_000_000, exec_ref_id=row.ref)


def replay(rows: list[Row]) -> None:
    state: TradingState = new_trading_state("ACC", u(CASH))
    for i, row in enumerate(rows):
        before = state
        state, out = on_execution(state, _report(row, i), TradingConfig(), {})
        verdict = "applied" if isinstance(out.outcome, Applied) else (
            "invalid" if isinstance(out.outcome, Invalid) else "duplicate")
        where = f"{row.exec_id} ({row.exec_type}): {out.outcome}"
        assert verdict == row.verdict, where
        order = state.orders.get("o1")
        if verdict != "applied":
            # A refused report changes nothing: the row's quantities are what it claimed.
            assert state is before, where
            assert order is None or order.ord_status == row.status, where
        elif row.status is None:
            assert order is None, where
        else:
            assert order is not None, where
            got = (order.ord_status, to_decimal(order.cum_qty), to_decimal(order.leaves_qty))
            assert got == (row.status, Decimal(row.cum_qty), Decimal(row.leaves_qty)), where
        position = state.account.positions.get("XYZ")
        qty = 0 if position is None else position.qty
        avg = None if position is None else position.avg_cost
        assert to_decimal(qty) == row.position, where
        assert (None if avg is None else to_decimal(avg)) == (
            None if row.avg_px is None else Decimal(row.avg_px)), where
        assert to_decimal(state.account.cash) == Decimal(row.cash), where


R = Row
SCENARIOS: dict[str, list[Row]] = {
    # D1 Vanilla: filled order.
    "D1": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 2000, 8000, 2000, 10, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("C", E.TRADE, S.PARTIALLY_FILLED, 10000, 3000, 7000, 1000, 11, None,
          "applied", S.PARTIALLY_FILLED, 3000, "10.33333333", "969000"),
        R("D", E.TRADE, S.FILLED, 10000, 10000, 0, 7000, 12, None,
          "applied", S.FILLED, 10000, "11.5", "885000"),
    ],
    # D2 Vanilla: part-filled day order, done for day (nothing left open; a later
    # execution is refused).
    "D2": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.TRADE, S.PARTIALLY_FILLED, 10000, 2000, 8000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("D", E.DONE_FOR_DAY, S.DONE_FOR_DAY, 10000, 2000, 0, 0, 0, None,
          "applied", S.DONE_FOR_DAY, 2000, "10", "980000"),
        R("E", E.TRADE, S.PARTIALLY_FILLED, 10000, 3000, 7000, 1000, 10, None,
          "invalid", S.DONE_FOR_DAY, 2000, "10", "980000"),
    ],
    # D4 Cancel request for a part-filled order; executions occur while the cancel is
    # pending: Trade with OrdStatus Pending Cancel (the pending status takes precedence).
    "D4": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.PENDING_CANCEL, S.PENDING_CANCEL, 10000, 1000, 9000, 0, 0, None,
          "applied", S.PENDING_CANCEL, 1000, "10", "990000"),
        R("D", E.TRADE, S.PENDING_CANCEL, 10000, 1500, 8500, 500, 10, None,
          "applied", S.PENDING_CANCEL, 1500, "10", "985000"),
        R("E", E.CANCELED, S.CANCELED, 10000, 1500, 0, 0, 0, None,
          "applied", S.CANCELED, 1500, "10", "985000"),
    ],
    # D5 Cancel request for an order that becomes filled before the cancel can be accepted:
    # the last execution leaves nothing, the order is filled (the Cancel Reject that follows
    # is no execution report); a later Canceled is refused.
    "D5": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 2000, 8000, 2000, 10, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("C", E.TRADE, S.PARTIALLY_FILLED, 10000, 5000, 5000, 3000, 10, None,
          "applied", S.PARTIALLY_FILLED, 5000, "10", "950000"),
        R("D", E.PENDING_CANCEL, S.PENDING_CANCEL, 10000, 5000, 5000, 0, 0, None,
          "applied", S.PENDING_CANCEL, 5000, "10", "950000"),
        R("E", E.TRADE, S.PENDING_CANCEL, 10000, 10000, 0, 5000, 10, None,
          "applied", S.FILLED, 10000, "10", "900000"),
        R("F", E.CANCELED, S.CANCELED, 10000, 10000, 0, 0, 0, None,
          "invalid", S.FILLED, 10000, "10", "900000"),
    ],
    # D7 Part-filled order, replace to increase the quantity, execution while the order is
    # pending replace (reported with the original quantities).
    "D7": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 1000, 9000, 0, 0, None,
          "applied", S.PENDING_REPLACE, 1000, "10", "990000"),
        R("D", E.TRADE, S.PENDING_REPLACE, 10000, 1100, 8900, 100, 10, None,
          "applied", S.PENDING_REPLACE, 1100, "10", "989000"),
        R("E", E.REPLACED, S.PARTIALLY_FILLED, 12000, 1100, 10900, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 1100, "10", "989000"),
        R("F", E.TRADE, S.FILLED, 12000, 12000, 0, 10900, 10, None,
          "applied", S.FILLED, 12000, "10", "880000"),
    ],
    # D8 Filled order, then a replace to increase the quantity: the filled order lives on.
    "D8": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.FILLED, 10000, 10000, 0, 10000, 10, None,
          "applied", S.FILLED, 10000, "10", "900000"),
        R("C", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 10000, 0, 0, 0, None,
          "applied", S.PENDING_REPLACE, 10000, "10", "900000"),
        R("D", E.REPLACED, S.PARTIALLY_FILLED, 12000, 10000, 2000, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 10000, "10", "900000"),
        R("E", E.TRADE, S.FILLED, 12000, 12000, 0, 2000, 10, None,
          "applied", S.FILLED, 12000, "10", "880000"),
    ],
    # D10 Replace to decrease the quantity, sent while an execution is being reported; the
    # requested quantity exceeds cum_qty: an execution arrives around the pending replace
    # (here while it is pending), the order is replaced, then filled.
    "D10": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 1000, 9000, 0, 0, None,
          "applied", S.PENDING_REPLACE, 1000, "10", "990000"),
        R("D", E.TRADE, S.PENDING_REPLACE, 10000, 1500, 8500, 500, 10, None,
          "applied", S.PENDING_REPLACE, 1500, "10", "985000"),
        R("E", E.REPLACED, S.PARTIALLY_FILLED, 8000, 1500, 6500, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 1500, "10", "985000"),
        R("F", E.TRADE, S.FILLED, 8000, 8000, 0, 6500, 10, None,
          "applied", S.FILLED, 8000, "10", "920000"),
    ],
    # D11 The replace passes an execution on the connection; the requested quantity equals
    # cum_qty: the order quantity is amended to cum_qty, the order is filled.
    "D11": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 7000, 3000, 7000, 10, None,
          "applied", S.PARTIALLY_FILLED, 7000, "10", "930000"),
        R("C", E.REPLACED, S.FILLED, 7000, 7000, 0, 0, 0, None,
          "applied", S.FILLED, 7000, "10", "930000"),
    ],
    # D12 ... the requested quantity is below cum_qty: amended to cum_qty.
    "D12": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 8000, 2000, 8000, 10, None,
          "applied", S.PARTIALLY_FILLED, 8000, "10", "920000"),
        R("C", E.REPLACED, S.FILLED, 8000, 8000, 0, 0, 0, None,
          "applied", S.FILLED, 8000, "10", "920000"),
    ],
    # D13 One replace accepted, then another also accepted; an execution while the first is
    # pending.
    "D13": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 1000, 9000, 0, 0, None,
          "applied", S.PENDING_REPLACE, 1000, "10", "990000"),
        R("D", E.TRADE, S.PENDING_REPLACE, 10000, 1500, 8500, 500, 10, None,
          "applied", S.PENDING_REPLACE, 1500, "10", "985000"),
        R("E", E.REPLACED, S.PARTIALLY_FILLED, 8000, 1500, 6500, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 1500, "10", "985000"),
        R("F", E.TRADE, S.PARTIALLY_FILLED, 8000, 3500, 4500, 2000, 10, None,
          "applied", S.PARTIALLY_FILLED, 3500, "10", "965000"),
        R("G", E.PENDING_REPLACE, S.PENDING_REPLACE, 8000, 3500, 4500, 0, 0, None,
          "applied", S.PENDING_REPLACE, 3500, "10", "965000"),
        R("H", E.REPLACED, S.PARTIALLY_FILLED, 6000, 3500, 2500, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 3500, "10", "965000"),
        R("I", E.TRADE, S.FILLED, 6000, 6000, 0, 2500, 10, None,
          "applied", S.FILLED, 6000, "10", "940000"),
    ],
    # D15 A replace rejected after it was pending (the Cancel Reject is no execution
    # report: the next report's OrdStatus is no longer Pending Replace), then another one
    # accepted.
    "D15": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 1000, 9000, 0, 0, None,
          "applied", S.PENDING_REPLACE, 1000, "10", "990000"),
        R("D", E.TRADE, S.PARTIALLY_FILLED, 10000, 1500, 8500, 500, 10, None,
          "applied", S.PARTIALLY_FILLED, 1500, "10", "985000"),
        R("E", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 1500, 8500, 0, 0, None,
          "applied", S.PENDING_REPLACE, 1500, "10", "985000"),
        R("F", E.REPLACED, S.PARTIALLY_FILLED, 7000, 1500, 5500, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 1500, "10", "985000"),
    ],
    # D19 Unsolicited cancel of a part-filled order.
    "D19": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 10, None,
          "applied", S.PARTIALLY_FILLED, 1000, "10", "990000"),
        R("C", E.CANCELED, S.CANCELED, 10000, 1000, 0, 0, 0, None,
          "applied", S.CANCELED, 1000, "10", "990000"),
    ],
    # D29 GTC order partially filled, done for day, restated (renewed) and canceled the
    # following day.
    "D29": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 2000, 8000, 2000, 10, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("C", E.DONE_FOR_DAY, S.DONE_FOR_DAY, 10000, 2000, 8000, 0, 0, None,
          "applied", S.DONE_FOR_DAY, 2000, "10", "980000"),
        R("D", E.RESTATED, S.PARTIALLY_FILLED, 10000, 2000, 8000, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("E", E.PENDING_CANCEL, S.PENDING_CANCEL, 10000, 2000, 8000, 0, 0, None,
          "applied", S.PENDING_CANCEL, 2000, "10", "980000"),
        R("F", E.CANCELED, S.CANCELED, 10000, 2000, 0, 0, 0, None,
          "applied", S.CANCELED, 2000, "10", "980000"),
    ],
    # D34 Filled order, followed by correction and cancellation of executions (ExecRefID):
    # a bust re-opens the filled order; a correction of a correction names the correction;
    # after a replace an execution is corrected to a larger quantity.
    "D34": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("C", E.TRADE, S.PARTIALLY_FILLED, 10000, 1000, 9000, 1000, 100, None,
          "applied", S.PARTIALLY_FILLED, 1000, "100", "900000"),
        R("D", E.TRADE, S.FILLED, 10000, 10000, 0, 9000, 110, None,
          "applied", S.FILLED, 10000, "109", "-90000"),
        R("E", E.TRADE_CANCEL, S.PARTIALLY_FILLED, 10000, 9000, 1000, 0, 0, "C",
          "applied", S.PARTIALLY_FILLED, 9000, "110", "10000"),
        R("F", E.TRADE_CORRECT, S.PARTIALLY_FILLED, 10000, 9000, 1000, 9000, 100, "D",
          "applied", S.PARTIALLY_FILLED, 9000, "100", "100000"),
        R("G", E.TRADE, S.FILLED, 10000, 10000, 0, 1000, 120, None,
          "applied", S.FILLED, 10000, "102", "-20000"),
        R("H", E.TRADE_CORRECT, S.FILLED, 10000, 10000, 0, 9000, 120, "F",
          "applied", S.FILLED, 10000, "120", "-200000"),
        R("I", E.PENDING_REPLACE, S.PENDING_REPLACE, 10000, 10000, 0, 0, 0, None,
          "applied", S.PENDING_REPLACE, 10000, "120", "-200000"),
        R("J", E.REPLACED, S.PARTIALLY_FILLED, 12000, 10000, 2000, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 10000, "120", "-200000"),
        R("K", E.TRADE_CORRECT, S.PARTIALLY_FILLED, 12000, 10500, 1500, 9500, 120, "H",
          "applied", S.PARTIALLY_FILLED, 10500, "120", "-260000"),
        # The busted C is no longer an execution in effect: refused.
        R("L", E.TRADE_CANCEL, S.PARTIALLY_FILLED, 12000, 9500, 2500, 0, 0, "C",
          "invalid", S.PARTIALLY_FILLED, 10500, "120", "-260000"),
    ],
    # D36 GTC order partially filled, done for day, restated and partially filled the
    # following day, with corrections of quantity on both executions.
    "D36": [
        R("A", E.NEW, S.NEW, 10000, 0, 10000, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 10000, 2000, 8000, 2000, 10, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("C", E.DONE_FOR_DAY, S.DONE_FOR_DAY, 10000, 2000, 8000, 0, 0, None,
          "applied", S.DONE_FOR_DAY, 2000, "10", "980000"),
        R("D", E.RESTATED, S.PARTIALLY_FILLED, 10000, 2000, 8000, 0, 0, None,
          "applied", S.PARTIALLY_FILLED, 2000, "10", "980000"),
        R("E", E.TRADE, S.PARTIALLY_FILLED, 10000, 3000, 7000, 1000, 11, None,
          "applied", S.PARTIALLY_FILLED, 3000, "10.33333333", "969000"),
        R("F", E.TRADE_CORRECT, S.PARTIALLY_FILLED, 10000, 2500, 7500, 1500, 10, "B",
          "applied", S.PARTIALLY_FILLED, 2500, "10.4", "974000"),
        R("G", E.TRADE_CORRECT, S.PARTIALLY_FILLED, 10000, 2000, 8000, 500, 11, "E",
          "applied", S.PARTIALLY_FILLED, 2000, "10.25", "979500"),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_appendix_d_scenario(name: str) -> None:
    replay(SCENARIOS[name])


def test_pending_new_then_acknowledged_or_rejected() -> None:
    """FIX 4.4 OrdStatus Pending New (A): the order exists before its acknowledgement; an
    execution before the New is refused, a Rejected ends it."""
    replay([
        R("A", E.PENDING_NEW, S.PENDING_NEW, 100, 0, 100, 0, 0, None,
          "applied", S.PENDING_NEW, 0, None, "1000000"),
        R("B", E.TRADE, S.PARTIALLY_FILLED, 100, 10, 90, 10, 10, None,
          "invalid", S.PENDING_NEW, 0, None, "1000000"),
        R("C", E.NEW, S.NEW, 100, 0, 100, 0, 0, None,
          "applied", S.NEW, 0, None, "1000000"),
        R("D", E.TRADE, S.FILLED, 100, 100, 0, 100, 10, None,
          "applied", S.FILLED, 100, "10", "999000"),
    ])
    replay([
        R("A", E.PENDING_NEW, S.PENDING_NEW, 100, 0, 100, 0, 0, None,
          "applied", S.PENDING_NEW, 0, None, "1000000"),
        R("B", E.REJECTED, S.REJECTED, 100, 0, 0, 0, 0, None,
          "applied", S.REJECTED, 0, None, "1000000"),
    ])


def test_todays_fix_42_wire_values_still_apply() -> None:
    """Producers of the first schema version send Partial fill (1) and Fill (2): read as
    executions, with their stricter quantities (a Fill must leave nothing open)."""
    replay([
        R("A", E.NEW, S.NEW, 100, 0, 100, 0, 0, None, "applied", S.NEW, 0, None, "1000000"),
        R("B", E.PARTIAL_FILL, S.PARTIALLY_FILLED, 100, 40, 60, 40, 10, None,
          "applied", S.PARTIALLY_FILLED, 40, "10", "999600"),
        R("C", E.FILL, S.FILLED, 100, 90, 10, 50, 10, None,
          "invalid", S.PARTIALLY_FILLED, 40, "10", "999600"),
        R("D", E.FILL, S.FILLED, 100, 100, 0, 60, 10, None,
          "applied", S.FILLED, 100, "10", "999000"),
    ])
