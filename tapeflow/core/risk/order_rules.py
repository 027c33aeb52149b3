"""The risk rules about one order: fat finger (size, notional), price collar, an order that
cannot be valued, a fill through the limit price, a ClOrdID used by two live orders.

Per-order incidents: the readings of size, notional, collar and "unvalued" are keyed by
the order (`AlertKey.scope` = order_id), so each offending order alerts on its own, whatever
another order of the same symbol did before it (an edge trigger per (account, symbol) let a
second fat-finger order pass silently). A replace that brings the order within limits clears
its incident; the order's end clears whatever is still open (`order_ended`), so the levels
hold only live orders.

Two facts about a fill or a report are not levels but events, each its own alert with an id
from the report (like invalid executions): a fill at a price worse than the order's limit
(`fill_through_limit`), and a ClOrdID that another live order of the account already uses
(`client_order_id_reused`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tapeflow.core.fixedpoint import ONE, fmt
from tapeflow.core.models import ExecutionReport, OrderType, RiskAlert, Severity, Side, Unit
from tapeflow.core.risk.levels import AlertKey, Level, Reading, alert_id
from tapeflow.core.risk.limits import RiskLimits, grade, grade_ratio, ratio_bps
from tapeflow.core.trading.orders import Fill, OrderState
from tapeflow.core.trading.positions import to_scale8

ORDER_SIZE = "order_size"
ORDER_NOTIONAL = "order_notional"
PRICE_COLLAR = "price_collar"
UNVALUED_ORDER = "unvalued_order"
FILL_THROUGH_LIMIT = "fill_through_limit"
CLIENT_ORDER_ID_REUSED = "client_order_id_reused"
ORDER_RULES: Mapping[str, Unit] = {ORDER_SIZE: Unit.QUANTITY, ORDER_NOTIONAL: Unit.MONEY,
                                   PRICE_COLLAR: Unit.BPS, UNVALUED_ORDER: Unit.QUANTITY}
"""The rules whose incidents belong to one order (scope = order_id), with their units."""


def order_reference_price(order: OrderState, mark_px: int | None) -> int | None:
    """The price an order is valued at: its limit, else its stop, else the market mark."""
    if order.limit_price is not None:
        return order.limit_price
    if order.stop_price is not None:
        return order.stop_price
    return mark_px


def _key(rule: str, order: OrderState) -> AlertKey:
    return AlertKey(rule, order.account_id, order.symbol, order.order_id)


def check_order_size(
    limits: RiskLimits, order: OrderState, mark_px: int | None, source: str
) -> list[Reading]:
    """Fat finger: order quantity, and order notional at its reference price; an order with
    no price to value it by (a market order before any mark) is its own incident, since the
    notional and buying-power checks cannot judge it."""
    oid, qty = order.order_id, order.order_qty
    out = [
        Reading(_key(ORDER_SIZE, order), grade(qty, limits.max_order_qty, limits.warn_bps),
                qty, limits.max_order_qty, lambda: f"order {oid} quantity {fmt(qty)}", source,
                Unit.QUANTITY)
    ]
    px = order_reference_price(order, mark_px)
    if px is None:
        if limits.max_order_notional is not None or limits.max_leverage is not None:
            out.append(Reading(
                _key(UNVALUED_ORDER, order), Severity.WARNING, qty, None,
                f"order {oid} ({order.order_type}, quantity {fmt(qty)}) cannot be valued: no "
                f"price and no mark for {order.symbol}; notional and buying power unchecked",
                source, Unit.QUANTITY))
        return out
    out.append(Reading(_key(UNVALUED_ORDER, order), None, qty, None, f"order {oid} valued",
                       source, Unit.QUANTITY))
    if limits.max_order_notional is not None:
        notional_16 = qty * px
        out.append(Reading(
            _key(ORDER_NOTIONAL, order),
            grade(notional_16, limits.max_order_notional * ONE, limits.warn_bps),
            to_scale8(notional_16), limits.max_order_notional,
            lambda: f"order {oid} notional {fmt(to_scale8(notional_16))} at {fmt(px)}",
            source, Unit.MONEY))
    return out


def check_price_collar(
    limits: RiskLimits, order: OrderState, mark_px: int | None, source: str
) -> list[Reading]:
    """Limit price too aggressive against its reference (buy above / sell below by more
    than the collar).

    The reference is the market mark for a limit order and the stop price for a stop-limit
    order: the stop is the price at which it becomes a limit order, so its limit is judged
    against that, not against a market that may be far from the trigger. A stop (market)
    order has no limit price to collar. Only the aggressive side counts: a passive order far
    from its reference cannot trade at a bad price, an aggressive one can.
    """
    lp = order.limit_price
    if order.order_type == OrderType.STOP_LIMIT:
        ref, what = order.stop_price, "stop"
    elif order.order_type == OrderType.LIMIT:
        ref, what = mark_px, "mark"
    else:
        return []
    if lp is None or ref is None or ref <= 0:
        return []
    through = max(lp - ref if order.side == Side.BUY else ref - lp, 0)
    limit = limits.price_collar_bps
    return [
        Reading(
            _key(PRICE_COLLAR, order),
            grade_ratio(through, ref, limit, limits.warn_bps),
            ratio_bps(through, ref),
            None if limit is None else limit * ONE,
            lambda: f"order {order.order_id} {order.side} limit {fmt(lp)} vs {what} {fmt(ref)}",
            source,
            Unit.BPS,
        )
    ]


def order_ended(levels: Mapping[AlertKey, Level], order: OrderState, source: str
                ) -> list[Reading]:
    """Clear the incidents still open for an order that has ended."""
    return [
        Reading(key, None, None, None, f"order {order.order_id} ended ({order.status})",
                source, ORDER_RULES[key.rule])
        for key in (_key(rule, order) for rule in ORDER_RULES) if key in levels
    ]


def fill_through_limit(order: OrderState, fill: Fill) -> RiskAlert | None:
    """A fill at a price worse than the order's limit: a buy above it, a sell below it. The
    fill happened and is booked; the alert says the venue or the OMS broke the limit."""
    lp = order.limit_price
    if lp is None or order.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return None
    worse = fill.price > lp if fill.side == Side.BUY else fill.price < lp
    if not worse:
        return None
    key = AlertKey(FILL_THROUGH_LIMIT, fill.account_id, fill.symbol, order.order_id)
    return RiskAlert(
        alert_id=alert_id(key, fill.exec_id, "EVENT"), rule=FILL_THROUGH_LIMIT,
        severity=Severity.CRITICAL, account_id=fill.account_id, symbol=fill.symbol,
        ts_event=fill.ts_event, observed=fill.price, limit=lp,
        message=(f"execution {fill.exec_id} of order {order.order_id}: {fill.side} "
                 f"{fmt(fill.qty)} at {fmt(fill.price)}, worse than the limit {fmt(lp)}"),
        source_event_id=fill.exec_id, unit=Unit.MONEY)


def client_order_id_reused(report: ExecutionReport, holder: str) -> RiskAlert:
    """Two live orders of one account with the same ClOrdID (FIX requires it unique): the
    OMS acknowledged both; cancels and replaces by ClOrdID are now ambiguous."""
    key = AlertKey(CLIENT_ORDER_ID_REUSED, report.account_id, report.symbol, report.order_id)
    return RiskAlert(
        alert_id=alert_id(key, report.exec_id, "EVENT"), rule=CLIENT_ORDER_ID_REUSED,
        severity=Severity.WARNING, account_id=report.account_id, symbol=report.symbol,
        ts_event=report.ts_event, observed=None, limit=None,
        message=(f"order {report.order_id} uses client_order_id {report.client_order_id}, "
                 f"already used by live order {holder}"),
        source_event_id=report.exec_id)
