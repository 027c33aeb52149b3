"""The order lifecycle: FIX 4.4 ExecutionReport semantics as an explicit transition table.

Every report is judged against the order's current state and classified as exactly one of:

* `Applied`: the state machine allows it and its quantities are consistent; the new order
  state is returned, and for fills a `Fill` delta that positions consume.
* `Duplicate`: the exec_id was already applied to this order, or a fill's cum_qty does not
  advance past what was already applied. Nothing changes. This is what makes at-least-once
  delivery (Kafka redelivery, Bytewax replay after recovery) count every fill once.
* `Invalid`: the report breaks the state machine or is inconsistent. Nothing changes; the
  caller logs it and raises an alert (docs/design.md, "Orders").

Decisions, with the reason for each:

* The order's status is *derived* (from the exec type and the quantities) and the report's
  ord_status must agree with it. Trusting the OMS's status blindly would let one malformed
  report move an order backwards; refusing it makes the disagreement visible as an alert.
  `REPLACED` (FIX 4.2 style) is accepted as ord_status of a REPLACED report, but the order
  continues as NEW / PARTIALLY_FILLED, as FIX 4.4 says it should.
* Only NEW or REJECTED may be the first report of an order. Anything else refers to an
  order we never saw acknowledged: it is invalid, not applied (no position from nowhere).
* Fills must be self-consistent: cum_qty = previous cum_qty + last_qty, leaves_qty =
  order_qty - cum_qty, PARTIAL_FILL leaves something open and FILL leaves nothing. A fill
  with a cum_qty gap (a missed report) is refused rather than guessed at; reconciliation
  against the OMS is the remedy, and the alert says so.
* Duplicate detection runs before the transition table, so a re-sent fill of a FILLED order
  is a harmless duplicate, while a fill that *advances* cum_qty after a terminal state is
  invalid.
* Each order remembers the exec_ids it applied, at most `MAX_EXEC_IDS_PER_ORDER` (the most
  recent). Orders end, so this is per-order bounded memory; a duplicate older than that
  window is still caught for fills by the cum_qty rule, and for other exec types by the
  table (a stale NEW on a live order is refused) - never applied twice.
* The order's avg_px is computed here from the fills (exact notional at scale 16, divided
  half-even to scale 8), not copied from the report, so it agrees with positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side

MAX_EXEC_IDS_PER_ORDER = 1024
"""Bound on the exec_ids remembered per order (the most recent are kept)."""

TERMINAL_STATUSES: frozenset[OrdStatus] = frozenset(
    {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
)
FILL_TYPES: frozenset[ExecType] = frozenset({ExecType.PARTIAL_FILL, ExecType.FILL})


@dataclass(frozen=True, slots=True)
class OrderState:
    """The current state of one order, as the stores' `orders` row.

    `version` starts at 1 and grows by one with every applied report, so an upsert guarded
    by it never moves a row backwards on replay. `cum_notional` is sum(last_qty * last_px)
    at scale 16, exact.
    """

    order_id: str
    client_order_id: str | None
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    order_qty: int
    limit_price: int | None
    stop_price: int | None
    cum_qty: int
    leaves_qty: int
    cum_notional: int
    status: OrdStatus
    ts_created: int
    ts_last: int
    version: int
    exec_ids: tuple[str, ...]

    @property
    def avg_px(self) -> int | None:
        """Volume-weighted fill price, scale 8, rounded half-even; None before any fill."""
        if self.cum_qty == 0:
            return None
        return div_round(self.cum_notional, self.cum_qty)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Fill(NamedTuple):
    """The delta one applied fill makes: what positions and cash consume."""

    exec_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    qty: int
    price: int
    commission: int
    ts_event: int


class Applied(NamedTuple):
    order: OrderState
    fill: Fill | None


class Duplicate(NamedTuple):
    order_id: str
    exec_id: str
    reason: str


class Invalid(NamedTuple):
    order_id: str
    exec_id: str
    reason: str


Outcome = Applied | Duplicate | Invalid

Handler = Callable[["OrderState | None", ExecutionReport], "OrderState | str"]
"""Builds the next state, or returns the reason the report is inconsistent."""


class Transition(NamedTuple):
    """One allowed edge: the handler and the statuses it may lead to."""

    handler: Handler
    results: frozenset[OrdStatus]


def _status_after_quantities(order_qty: int, cum_qty: int) -> OrdStatus:
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


def _on_new(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    if report.ord_status != OrdStatus.NEW:
        return f"NEW with ord_status {report.ord_status}"
    if report.cum_qty != 0 or report.last_qty != 0:
        return "NEW with a non-zero cum_qty or last_qty"
    if report.leaves_qty != report.order_qty:
        return f"NEW with leaves_qty {report.leaves_qty} != order_qty {report.order_qty}"
    bad_price = _check_prices(report)
    if bad_price is not None:
        return bad_price
    return _fresh_order(report, OrdStatus.NEW)


def _on_rejected(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    if report.ord_status != OrdStatus.REJECTED:
        return f"REJECTED with ord_status {report.ord_status}"
    if report.cum_qty != 0 or report.last_qty != 0 or report.leaves_qty != 0:
        return "REJECTED with non-zero cum_qty, last_qty or leaves_qty"
    return _fresh_order(report, OrdStatus.REJECTED)


def _fresh_order(report: ExecutionReport, status: OrdStatus) -> OrderState:
    return OrderState(
        order_id=report.order_id,
        client_order_id=report.client_order_id,
        account_id=report.account_id,
        symbol=report.symbol,
        side=report.side,
        order_type=report.order_type,
        order_qty=report.order_qty,
        limit_price=report.limit_price,
        stop_price=report.stop_price,
        cum_qty=0,
        leaves_qty=report.leaves_qty,
        cum_notional=0,
        status=status,
        ts_created=report.ts_event,
        ts_last=report.ts_event,
        version=1,
        exec_ids=(report.exec_id,),
    )


def _on_fill(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    assert order is not None  # the table has no fill edge from an unknown order
    if report.last_qty <= 0:
        return f"fill with non-positive last_qty {report.last_qty}"
    if report.last_px is None or report.last_px <= 0:
        return "fill without a positive last_px"
    if report.order_qty != order.order_qty:
        return f"fill changes order_qty {order.order_qty} -> {report.order_qty}"
    if report.cum_qty > order.order_qty:
        return f"fill exceeds order_qty: cum_qty {report.cum_qty} > {order.order_qty}"
    if report.cum_qty != order.cum_qty + report.last_qty:
        return (
            f"cum_qty gap: {order.cum_qty} + last_qty {report.last_qty} != cum_qty "
            f"{report.cum_qty} (a missed fill? reconcile with the OMS)"
        )
    if report.leaves_qty != order.order_qty - report.cum_qty:
        return f"leaves_qty {report.leaves_qty} != order_qty - cum_qty"
    full = report.cum_qty == order.order_qty
    if report.exec_type == ExecType.FILL and not full:
        return "FILL leaves quantity open"
    if report.exec_type == ExecType.PARTIAL_FILL and full:
        return "PARTIAL_FILL completes the order (expected FILL)"
    status = OrdStatus.FILLED if full else OrdStatus.PARTIALLY_FILLED
    if report.ord_status != status:
        return f"{report.exec_type} with ord_status {report.ord_status}, expected {status}"
    return _advance(
        order,
        report,
        cum_qty=report.cum_qty,
        leaves_qty=report.leaves_qty,
        cum_notional=order.cum_notional + report.last_qty * report.last_px,
        status=status,
    )


def _on_done(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    """CANCELED and EXPIRED: the order ends with whatever it filled."""
    assert order is not None
    expected = OrdStatus(report.exec_type.value)
    if report.ord_status != expected:
        return f"{report.exec_type} with ord_status {report.ord_status}"
    if report.cum_qty != order.cum_qty or report.last_qty != 0:
        return f"{report.exec_type} changes cum_qty {order.cum_qty} -> {report.cum_qty}"
    if report.leaves_qty != 0:
        return f"{report.exec_type} with leaves_qty {report.leaves_qty} != 0"
    return _advance(order, report, leaves_qty=0, status=expected)


def _on_replaced(order: OrderState | None, report: ExecutionReport) -> OrderState | str:
    assert order is not None
    if report.cum_qty != order.cum_qty or report.last_qty != 0:
        return f"REPLACED changes cum_qty {order.cum_qty} -> {report.cum_qty}"
    if report.order_qty < order.cum_qty:
        return f"REPLACED order_qty {report.order_qty} below cum_qty {order.cum_qty}"
    if report.leaves_qty != report.order_qty - order.cum_qty:
        return f"leaves_qty {report.leaves_qty} != order_qty - cum_qty"
    status = _status_after_quantities(report.order_qty, order.cum_qty)
    if report.ord_status not in (status, OrdStatus.REPLACED):
        return f"REPLACED with ord_status {report.ord_status}, expected {status}"
    bad_price = _check_prices(report)
    if bad_price is not None:
        return bad_price
    return _advance(
        order,
        report,
        client_order_id=report.client_order_id,
        order_type=report.order_type,
        order_qty=report.order_qty,
        limit_price=report.limit_price,
        stop_price=report.stop_price,
        leaves_qty=report.leaves_qty,
        status=status,
    )


def _advance(order: OrderState, report: ExecutionReport, **changes: Any) -> OrderState:
    exec_ids = (*order.exec_ids, report.exec_id)[-MAX_EXEC_IDS_PER_ORDER:]
    return replace(
        order,
        ts_last=report.ts_event,
        version=order.version + 1,
        exec_ids=exec_ids,
        **changes,
    )


_LIVE_RESULTS = frozenset({OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.FILLED})


def _live_edges(status: OrdStatus) -> dict[tuple[OrdStatus | None, ExecType], Transition]:
    return {
        (status, ExecType.PARTIAL_FILL): Transition(
            _on_fill, frozenset({OrdStatus.PARTIALLY_FILLED})
        ),
        (status, ExecType.FILL): Transition(_on_fill, frozenset({OrdStatus.FILLED})),
        (status, ExecType.CANCELED): Transition(_on_done, frozenset({OrdStatus.CANCELED})),
        (status, ExecType.EXPIRED): Transition(_on_done, frozenset({OrdStatus.EXPIRED})),
        (status, ExecType.REPLACED): Transition(_on_replaced, _LIVE_RESULTS),
    }


TRANSITIONS: Mapping[tuple[OrdStatus | None, ExecType], Transition] = {
    (None, ExecType.NEW): Transition(_on_new, frozenset({OrdStatus.NEW})),
    (None, ExecType.REJECTED): Transition(_on_rejected, frozenset({OrdStatus.REJECTED})),
    **_live_edges(OrdStatus.NEW),
    **_live_edges(OrdStatus.PARTIALLY_FILLED),
}
"""Every allowed (current status, exec type) pair; any pair not here is invalid.

None is "no such order yet". Terminal statuses (FILLED, CANCELED, REJECTED, EXPIRED) have
no outgoing edge. The PENDING_* and REPLACED statuses are never held by an order here: the
exec types that would lead to them are not in the wire contract, and a replace leaves the
order NEW or PARTIALLY_FILLED. A second NEW for a known order, and REJECTED of an order
that was already acknowledged (FIX rejects a cancel/replace request with an
OrderCancelReject, not an ExecutionReport), are invalid.
"""


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
            return order, Duplicate(oid, xid, f"cum_qty {report.cum_qty} does not advance")
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
    fill = None
    if report.exec_type in FILL_TYPES:
        assert report.last_px is not None
        fill = Fill(
            exec_id=xid,
            order_id=oid,
            account_id=report.account_id,
            symbol=report.symbol,
            side=report.side,
            qty=report.last_qty,
            price=report.last_px,
            commission=report.commission or 0,
            ts_event=report.ts_event,
        )
    return result, Applied(result, fill)
