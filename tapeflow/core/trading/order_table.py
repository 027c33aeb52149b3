"""The FIX 4.4 transition table of an order and the handler of each edge.

`TRANSITIONS[(status, exec_type)]` is the handler that judges a report of `exec_type` for an
order in `status` (None: no such order yet); a pair not in the table is invalid. A handler
returns the order's next state, or the reason the report is inconsistent. The edges follow
the order state change matrices of FIX 4.4 Volume 4, Appendix D (the scenarios the unit tests
replay are named there D1, D2, ...):

| status | exec types allowed |
| --- | --- |
| none yet | NEW, PENDING_NEW, REJECTED |
| PENDING_NEW | NEW, REJECTED |
| NEW | executions (TRADE, PARTIAL_FILL, FILL), CANCELED, EXPIRED, REPLACED, |
| | RESTATED, PENDING_CANCEL, PENDING_REPLACE, DONE_FOR_DAY |
| PARTIALLY_FILLED | the same, and TRADE_CANCEL, TRADE_CORRECT |
| DONE_FOR_DAY | as PARTIALLY_FILLED but DONE_FOR_DAY (a good-till order resumes next day) |
| FILLED | PENDING_REPLACE, REPLACED (D8: quantity raised), TRADE_CANCEL, TRADE_CORRECT |
| CANCELED, EXPIRED | TRADE_CANCEL, TRADE_CORRECT (an execution busted after the order ended) |
| REJECTED | nothing |

A pending cancel or replace is not a status of its own here (`OrderState.pending`): the
table is keyed by what the order is, and the handlers accept the pending status as the
report's OrdStatus while a request is pending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from tapeflow.core.fixedpoint import fmt
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus
from tapeflow.core.trading import order_state
from tapeflow.core.trading.order_state import OrderState, TradeRecord

Handler = Callable[["OrderState | None", ExecutionReport], "OrderState | str"]
"""Builds the next state, or returns the reason the report is inconsistent."""


class Transition(NamedTuple):
    """One allowed edge: the handler and the statuses it may lead to."""

    handler: Handler
    results: frozenset[OrdStatus]


def _derived(order_qty: int, cum_qty: int) -> OrdStatus:
    if cum_qty == 0:
        return OrdStatus.NEW
    if cum_qty < order_qty:
        return OrdStatus.PARTIALLY_FILLED
    return OrdStatus.FILLED


def _check_prices(report: ExecutionReport) -> str | None:
    needs_limit = report.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = report.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and (report.limit_price is None or report.limit_price <= 0):
        return f"{report.order_type} order needs a positive limit_price"
    if needs_stop and (report.stop_price is None or report.stop_price <= 0):
        return f"{report.order_type} order needs a positive stop_price"
    return None


def _status_is(report: ExecutionReport, allowed: set[OrdStatus | None]) -> str | None:
    if report.ord_status in allowed:
        return None
    expected = " or ".join(sorted(str(s) for s in allowed if s is not None))
    return f"{report.exec_type} with ord_status {report.ord_status}, expected {expected}"


def _unchanged_quantities(order: OrderState, report: ExecutionReport) -> str | None:
    if report.cum_qty != order.cum_qty or report.last_qty != 0:
        return (f"{report.exec_type} changes cum_qty {fmt(order.cum_qty)} -> "
                f"{fmt(report.cum_qty)} or has a last_qty")
    return None


def _fresh(report: ExecutionReport, status: OrdStatus) -> OrderState | str:
    if report.cum_qty != 0 or report.last_qty != 0:
        return f"{report.exec_type} with a non-zero cum_qty or last_qty"
    leaves = 0 if status == OrdStatus.REJECTED else report.order_qty
    if report.leaves_qty != leaves:
        return f"{report.exec_type} with leaves_qty {fmt(report.leaves_qty)} != {fmt(leaves)}"
    if status != OrdStatus.REJECTED:
        bad_price = _check_prices(report)
        if bad_price is not None:
            return bad_price
    return OrderState(
        order_id=report.order_id, client_order_id=report.client_order_id,
        account_id=report.account_id, symbol=report.symbol, side=report.side,
        order_type=report.order_type, order_qty=report.order_qty,
        limit_price=report.limit_price, stop_price=report.stop_price, cum_qty=0,
        leaves_qty=leaves, cum_notional=0, status=status, ts_created=report.ts_event,
        ts_last=report.ts_event, version=1, exec_ids=(report.exec_id,))


def _on_pending_new(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    bad = _status_is(report, {OrdStatus.PENDING_NEW})
    return bad if bad is not None else _fresh(report, OrdStatus.PENDING_NEW)


def _on_new(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    bad = _status_is(report, {OrdStatus.NEW})
    if bad is not None:
        return bad
    fresh = _fresh(report, OrdStatus.NEW)
    if order is None or isinstance(fresh, str):
        return fresh
    return _advance(order, report, client_order_id=report.client_order_id,
                    order_type=report.order_type, order_qty=report.order_qty,
                    limit_price=report.limit_price, stop_price=report.stop_price,
                    leaves_qty=report.order_qty, status=OrdStatus.NEW)


def _on_rejected(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    bad = _status_is(report, {OrdStatus.REJECTED})
    if bad is not None:
        return bad
    if report.cum_qty != 0 or report.last_qty != 0 or report.leaves_qty != 0:
        return "REJECTED with non-zero cum_qty, last_qty or leaves_qty"
    if order is None:
        return _fresh(report, OrdStatus.REJECTED)
    return _advance(order, report, leaves_qty=0, status=OrdStatus.REJECTED)


def _on_trade(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """An execution: FIX 4.4 Trade, or FIX 4.2 Partial fill / Fill."""
    assert order is not None  # the table has no execution edge from an unknown order
    if order.status == OrdStatus.DONE_FOR_DAY and order.leaves_qty == 0:
        return "execution after the order was done for the day with nothing open"
    if report.last_qty <= 0:
        return f"execution with non-positive last_qty {fmt(report.last_qty)}"
    if report.last_px is None or report.last_px <= 0:
        return "execution without a positive last_px"
    if report.order_qty != order.order_qty:
        return f"execution changes order_qty {fmt(order.order_qty)} -> {fmt(report.order_qty)}"
    if report.cum_qty > order.order_qty:
        return (f"execution exceeds order_qty: cum_qty {fmt(report.cum_qty)} > "
                f"{fmt(order.order_qty)}")
    if report.cum_qty != order.cum_qty + report.last_qty:
        return (f"cum_qty gap: {fmt(order.cum_qty)} + last_qty {fmt(report.last_qty)} != "
                f"cum_qty {fmt(report.cum_qty)} (a missed fill? reconcile with the OMS)")
    if report.leaves_qty != order.order_qty - report.cum_qty:
        return f"leaves_qty {fmt(report.leaves_qty)} != order_qty - cum_qty"
    full = report.cum_qty == order.order_qty
    if report.exec_type == ExecType.FILL and not full:
        return "FILL leaves quantity open"
    if report.exec_type == ExecType.PARTIAL_FILL and full:
        return "PARTIAL_FILL completes the order (expected FILL)"
    status = OrdStatus.FILLED if full else OrdStatus.PARTIALLY_FILLED
    if report.ord_status not in (status, order.pending):
        return _status_is(report, {status, order.pending}) or ""
    # A filled order's cancel cannot succeed (D5), and a report without the pending status
    # says the request was refused; a pending replace of a filled order may still be
    # accepted (D8), which FILLED allows.
    pending = order.pending if not full and report.ord_status == order.pending else None
    record = TradeRecord(report.exec_id, report.last_qty, report.last_px,
                         report.commission or 0, report.ts_event)
    return _advance(order, report, cum_qty=report.cum_qty, leaves_qty=report.leaves_qty,
                    cum_notional=order.cum_notional + report.last_qty * report.last_px,
                    status=status, pending=pending, trades=_keep(order.trades, record))


def _on_done(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """CANCELED and EXPIRED: the order ends with whatever it filled."""
    assert order is not None
    expected = OrdStatus(report.exec_type.value)
    bad = _status_is(report, {expected}) or _unchanged_quantities(order, report)
    if bad is not None:
        return bad
    if report.leaves_qty != 0:
        return f"{report.exec_type} with leaves_qty {fmt(report.leaves_qty)} != 0"
    return _advance(order, report, leaves_qty=0, status=expected, pending=None)


def _amend(order: OrderState, report: ExecutionReport, allowed: set[OrdStatus | None],
           pending: OrdStatus | None) -> OrderState | str:
    """REPLACED and RESTATED: new quantity, prices or type; cum_qty unchanged."""
    bad = _unchanged_quantities(order, report)
    if bad is not None:
        return bad
    if report.order_qty < order.cum_qty:
        return (f"{report.exec_type} order_qty {fmt(report.order_qty)} below cum_qty "
                f"{fmt(order.cum_qty)}")
    if report.leaves_qty != report.order_qty - order.cum_qty:
        return f"leaves_qty {fmt(report.leaves_qty)} != order_qty - cum_qty"
    status = _derived(report.order_qty, order.cum_qty)
    bad = _status_is(report, {status, *allowed})
    if bad is None:
        bad = _check_prices(report)
    if bad is not None:
        return bad
    return _advance(order, report, client_order_id=report.client_order_id,
                    order_type=report.order_type, order_qty=report.order_qty,
                    limit_price=report.limit_price, stop_price=report.stop_price,
                    leaves_qty=report.leaves_qty, status=status, pending=pending)


def _on_replaced(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """The replace is done (answering a pending one, or unannounced): it leaves the order
    NEW, PARTIALLY_FILLED or FILLED (D11, D12: amended down to cum_qty). OrdStatus REPLACED
    (FIX 4.2) is accepted; the order goes on in the derived status."""
    assert order is not None
    return _amend(order, report, {OrdStatus.REPLACED}, None)


def _on_restated(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """An unsolicited restatement (a GT order renewed, a quantity changed by the broker):
    like a replace, answering no request, so a pending one stays pending."""
    assert order is not None
    return _amend(order, report, {order.pending}, order.pending)


def _on_pending(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """PENDING_CANCEL, PENDING_REPLACE: a request is being worked; quantities as before."""
    assert order is not None
    status = OrdStatus(report.exec_type.value)
    bad = _status_is(report, {status}) or _unchanged_quantities(order, report)
    if bad is not None:
        return bad
    if report.order_qty != order.order_qty or report.leaves_qty != order.leaves_qty:
        return (f"{report.exec_type} changes order_qty or leaves_qty (the original order's "
                "quantities are reported until the request is done)")
    return _advance(order, report, pending=status)


def _on_done_for_day(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """Done for day (D2): a day order ends with nothing open; a good-till order keeps its
    leaves for the next day (it resumes with RESTATED or an execution)."""
    assert order is not None
    bad = _status_is(report, {OrdStatus.DONE_FOR_DAY}) or _unchanged_quantities(order, report)
    if bad is not None:
        return bad
    if report.leaves_qty not in (0, order.order_qty - order.cum_qty):
        return f"DONE_FOR_DAY with leaves_qty {fmt(report.leaves_qty)}"
    return _advance(order, report, leaves_qty=report.leaves_qty,
                    status=OrdStatus.DONE_FOR_DAY, pending=None)


def _after_correction(order: OrderState, report: ExecutionReport, cum: int
                      ) -> tuple[OrdStatus, int] | str:
    """Status and leaves after a bust or correction moved cum_qty to `cum`: an order that
    ended without being filled stays ended; an open or filled one follows its quantities."""
    if cum > order.order_qty:
        return f"cum_qty {fmt(cum)} exceeds order_qty {fmt(order.order_qty)}"
    ended = order.status in (OrdStatus.CANCELED, OrdStatus.EXPIRED) or (
        order.status == OrdStatus.DONE_FOR_DAY and order.leaves_qty == 0)
    if ended:
        status, leaves = order.status, 0
    elif order.status == OrdStatus.DONE_FOR_DAY:
        status, leaves = OrdStatus.DONE_FOR_DAY, order.order_qty - cum
    else:
        status, leaves = _derived(order.order_qty, cum), order.order_qty - cum
    if report.cum_qty != cum:
        return f"{report.exec_type} with cum_qty {fmt(report.cum_qty)}, expected {fmt(cum)}"
    if report.leaves_qty != leaves:
        return (f"{report.exec_type} with leaves_qty {fmt(report.leaves_qty)}, expected "
                f"{fmt(leaves)}")
    bad = _status_is(report, {status, order.pending})
    return bad if bad is not None else (status, leaves)


def _referenced(order: OrderState, report: ExecutionReport) -> TradeRecord | str:
    ref = report.exec_ref_id
    if ref is None:
        return f"{report.exec_type} without exec_ref_id"
    for trade in order.trades:
        if trade.exec_id == ref:
            return trade
    return f"exec_ref_id {ref} is not an execution in effect on order {order.order_id}"


def _on_trade_cancel(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """Trade Cancel (H): the referenced execution never happened (D34 step 5)."""
    assert order is not None
    old = _referenced(order, report)
    if isinstance(old, str):
        return old
    if report.last_qty not in (0, old.qty):
        return f"TRADE_CANCEL with last_qty {fmt(report.last_qty)}"
    after = _after_correction(order, report, order.cum_qty - old.qty)
    if isinstance(after, str):
        return after
    status, leaves = after
    trades = tuple(t for t in order.trades if t.exec_id != old.exec_id)
    return _advance(order, report, cum_qty=report.cum_qty, leaves_qty=leaves, status=status,
                    cum_notional=order.cum_notional - old.qty * old.price, trades=trades)


def _on_trade_correct(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """Trade Correct (G): the referenced execution was for last_qty at last_px (D34, D36).
    The correction becomes the execution in effect (a later correction names it); a missing
    commission keeps the corrected execution's."""
    assert order is not None
    old = _referenced(order, report)
    if isinstance(old, str):
        return old
    if report.last_qty <= 0 or report.last_px is None or report.last_px <= 0:
        return "TRADE_CORRECT without a positive last_qty and last_px"
    after = _after_correction(order, report, order.cum_qty - old.qty + report.last_qty)
    if isinstance(after, str):
        return after
    status, leaves = after
    commission = old.commission if report.commission is None else report.commission
    new = TradeRecord(report.exec_id, report.last_qty, report.last_px, commission,
                      old.ts_event)
    trades = (*(t for t in order.trades if t.exec_id != old.exec_id), new)
    notional = order.cum_notional - old.qty * old.price + new.qty * new.price
    return _advance(order, report, cum_qty=report.cum_qty, leaves_qty=leaves, status=status,
                    cum_notional=notional, trades=trades)


def _keep(trades: tuple[TradeRecord, ...], record: TradeRecord) -> tuple[TradeRecord, ...]:
    return (*trades, record)[-order_state.MAX_EXEC_IDS_PER_ORDER:]


def _advance(order: OrderState, report: ExecutionReport, **changes: Any) -> OrderState:
    limit = order_state.MAX_EXEC_IDS_PER_ORDER
    exec_ids = (*order.exec_ids, report.exec_id)
    forgotten = order.forgotten_cum
    if len(exec_ids) > limit:
        exec_ids, forgotten = exec_ids[-limit:], max(forgotten, order.cum_qty)
    return replace(order, ts_last=report.ts_event, version=order.version + 1,
                   exec_ids=exec_ids, forgotten_cum=forgotten, **changes)


_CORRECTIONS: dict[ExecType, Handler] = {
    ExecType.TRADE_CANCEL: _on_trade_cancel,
    ExecType.TRADE_CORRECT: _on_trade_correct,
}
_WORKING: dict[ExecType, Handler] = {
    ExecType.TRADE: _on_trade,
    ExecType.PARTIAL_FILL: _on_trade,
    ExecType.FILL: _on_trade,
    ExecType.CANCELED: _on_done,
    ExecType.EXPIRED: _on_done,
    ExecType.REPLACED: _on_replaced,
    ExecType.RESTATED: _on_restated,
    ExecType.PENDING_CANCEL: _on_pending,
    ExecType.PENDING_REPLACE: _on_pending,
    ExecType.DONE_FOR_DAY: _on_done_for_day,
}
"""What a working order accepts; a NEW one has no execution to bust or correct."""


_QUANTITY_STATUSES = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED})
_RESULTS: Mapping[ExecType, frozenset[OrdStatus]] = {
    ExecType.NEW: frozenset({OrdStatus.NEW}),
    ExecType.PENDING_NEW: frozenset({OrdStatus.PENDING_NEW}),
    ExecType.REJECTED: frozenset({OrdStatus.REJECTED}),
    ExecType.TRADE: frozenset({OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED}),
    ExecType.PARTIAL_FILL: frozenset({OrdStatus.PARTIALLY_FILLED}),
    ExecType.FILL: frozenset({OrdStatus.FILLED}),
    ExecType.CANCELED: frozenset({OrdStatus.CANCELED}),
    ExecType.EXPIRED: frozenset({OrdStatus.EXPIRED}),
    ExecType.REPLACED: _QUANTITY_STATUSES,
    ExecType.RESTATED: _QUANTITY_STATUSES,
    ExecType.DONE_FOR_DAY: frozenset({OrdStatus.DONE_FOR_DAY}),
}


def _results(status: OrdStatus | None, exec_type: ExecType) -> frozenset[OrdStatus]:
    """The statuses an edge may lead to (a pending request keeps the status; a bust or a
    correction keeps an ended or resting order's, else follows the quantities)."""
    if exec_type in (ExecType.PENDING_CANCEL, ExecType.PENDING_REPLACE) or (
            exec_type in (ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT)
            and status not in _QUANTITY_STATUSES):
        assert status is not None
        return frozenset({status})
    return _RESULTS.get(exec_type, _QUANTITY_STATUSES)


def _edges(status: OrdStatus | None, handlers: Mapping[ExecType, Handler]
           ) -> dict[tuple[OrdStatus | None, ExecType], Transition]:
    return {(status, exec_type): Transition(h, _results(status, exec_type))
            for exec_type, h in handlers.items()}


TRANSITIONS: Mapping[tuple[OrdStatus | None, ExecType], Transition] = {
    **_edges(None, {ExecType.NEW: _on_new, ExecType.PENDING_NEW: _on_pending_new,
                    ExecType.REJECTED: _on_rejected}),
    **_edges(OrdStatus.PENDING_NEW, {ExecType.NEW: _on_new, ExecType.REJECTED: _on_rejected}),
    **_edges(OrdStatus.NEW, _WORKING),
    **_edges(OrdStatus.PARTIALLY_FILLED, {**_WORKING, **_CORRECTIONS}),
    **_edges(OrdStatus.DONE_FOR_DAY, {**{e: h for e, h in _WORKING.items()
                                         if e != ExecType.DONE_FOR_DAY}, **_CORRECTIONS}),
    **_edges(OrdStatus.FILLED, {ExecType.PENDING_REPLACE: _on_pending,
                                ExecType.REPLACED: _on_replaced, **_CORRECTIONS}),
    **_edges(OrdStatus.CANCELED, _CORRECTIONS),
    **_edges(OrdStatus.EXPIRED, _CORRECTIONS),
}
"""Every allowed (current status, exec type) pair; any pair not here is invalid (see the
module doc)."""
