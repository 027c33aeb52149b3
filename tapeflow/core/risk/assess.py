"""Which risk rules run on which event, and the edge-triggered state they share.

Per account (`RiskState`): the current level of every breached key and the turnover
windows. Per feed (`FeedRiskState`): the levels of sequence-gap alerts, which belong to no
account. Each `assess_*` function runs the rules an event can affect, feeds the readings to
`risk_levels.apply_readings`, and returns the new state and the alerts:

| event | rules |
| --- | --- |
| order created or amended | per order: size, notional (or "cannot be valued"), collar; session |
| any applied report | position limit incl. open orders, buying power incl. opening orders |
| the order ends | its per-order incidents clear |
| fill | session hours, turnover, daily loss, drawdown, gross exposure, concentration |
| mark, held symbol | daily loss, drawdown, gross exposure, buying power, concentration, stale |
| timer (`now`) | stale data, turnover window expiry |
| sequence gap / feed timer | feed gap, gap quiet period |

Reports the order state machine refuses are not edge-triggered: each is its own incident
(`invalid_execution_alert`), CRITICAL for a refused fill (the position may now differ from
the OMS's) and WARNING otherwise; its id derives from the exec_id, so a redelivered
invalid report is the same alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.models import ExecType, ExecutionReport, RiskAlert, Severity
from tapeflow.core.risk.feed import (
    check_feed_gap,
    check_gap_quiet,
    check_stale_marks,
    mark_event_id,
)
from tapeflow.core.risk.levels import AlertKey, Level, Reading, alert_id, apply_readings
from tapeflow.core.risk.limits import RiskLimits, SessionHours
from tapeflow.core.risk.order_rules import check_order_size, check_price_collar, order_ended
from tapeflow.core.risk.rules import (
    TURNOVER,
    AccountFigures,
    TurnoverWindow,
    check_buying_power,
    check_concentration,
    check_daily_loss,
    check_drawdown,
    check_gross_exposure,
    check_position_limit,
    check_session,
    check_turnover,
    turnover_add,
    turnover_prune,
)
from tapeflow.core.trading.order_book import OrderBook, open_quantities
from tapeflow.core.trading.orders import FILL_TYPES, Fill, OrderState
from tapeflow.core.trading.positions import AccountState, MarkPrice

INVALID_EXECUTION = "invalid_execution"
_ORDER_CHANGES = frozenset({ExecType.NEW, ExecType.PENDING_NEW, ExecType.REPLACED,
                            ExecType.RESTATED})
"""Reports that create an order or change what it asks for: the per-order checks run."""


@dataclass(frozen=True, slots=True)
class RiskState:
    levels: Mapping[AlertKey, Level] = field(default_factory=dict)
    turnover: Mapping[str, TurnoverWindow] = field(default_factory=dict)
    """Per symbol; a symbol is dropped once its window is empty, so this is bounded by the
    symbols traded within the last `turnover_window_us`."""


@dataclass(frozen=True, slots=True)
class FeedRiskState:
    levels: Mapping[AlertKey, Level] = field(default_factory=dict)


def _mark_px(symbol: str, account: AccountState, marks: Mapping[str, MarkPrice]) -> int | None:
    mark = marks.get(symbol)
    if mark is not None:
        return mark.price
    position = account.positions.get(symbol)
    return position.mark_px if position is not None and position.qty != 0 else None


def _reducing_16(qty: int, priced_16: int, unpriced: int, position: int,
                 mark_px: int | None) -> int:
    """The notional of the part of one side's open orders (`qty` in all) that would reduce a
    position of `position` (same sign as this side's reducing direction, > 0): that side's
    value times min(qty, position) / qty, half-even (which of the orders reduces is not known,
    so the reducing part is valued at the side's average price)."""
    value = priced_16 + (unpriced * mark_px if unpriced and mark_px is not None else 0)
    reducing = min(qty, position)
    return value if reducing == qty else div_round(value * reducing, qty)


def opening_order_notional_16(
    book: OrderBook, account: AccountState, marks: Mapping[str, MarkPrice]
) -> int:
    """Notional (scale 16) of the account's live orders that would add to its exposure.

    A sell against a long (a buy against a short), up to the position's size, reduces
    exposure: it consumes no buying power, so its notional is taken out. An order with no
    price to value it by (a market order in a symbol with no mark yet) counts as zero here; it
    raises its own `unvalued_order` alert instead.
    """
    total = 0
    acct = account.account_id
    positions = account.positions
    # Unpacked, not by attribute: this runs for every live (account, symbol) on every fill
    # and mark.
    for (account_id, symbol), (bq, sq, bp, sp, bu, su) in book.exposure.items():
        if account_id != acct:
            continue
        total += bp + sp
        mark_px = None
        if bu or su:
            mark_px = _mark_px(symbol, account, marks)
            if mark_px is not None:
                total += (bu + su) * mark_px
        position = positions.get(symbol)
        if position is None:
            continue
        qty = position.qty
        if qty > 0 and sq:
            # Every sell reduces the long (the common case), or a share of them does.
            total -= sp if not su and qty >= sq else _reducing_16(sq, sp, su, qty, mark_px)
        elif qty < 0 and bq:
            total -= bp if not bu and -qty >= bq else _reducing_16(bq, bp, bu, -qty, mark_px)
    return total


def _exposure_readings(
    limits: RiskLimits,
    account: AccountState,
    book: OrderBook,
    marks: Mapping[str, MarkPrice],
    source: str,
) -> list[Reading]:
    """The rules that move with equity or gross exposure."""
    figures = AccountFigures.of(account)
    out = [
        *check_daily_loss(limits, account, source, figures),
        *check_drawdown(limits, account, source, figures),
        *check_gross_exposure(limits, account, source, figures),
        *check_buying_power(limits, account, opening_order_notional_16(book, account, marks),
                            source, figures),
    ]
    for symbol in account.positions:
        out.extend(check_concentration(limits, account, symbol, source, figures.equity_16))
    return out


def assess_execution(
    risk: RiskState,
    limits: RiskLimits,
    sessions: Mapping[str, SessionHours],
    *,
    account: AccountState,
    book: OrderBook,
    order: OrderState,
    report: ExecutionReport,
    fill: Fill | None,
    marks: Mapping[str, MarkPrice],
    corrected: bool = False,
) -> tuple[RiskState, tuple[RiskAlert, ...]]:
    """Rules after an applied report; `account` and `book` already include it. `corrected`:
    the report busted or corrected an execution (positions and cash moved, no new fill)."""
    source, ts, symbol = report.exec_id, report.ts_event, order.symbol
    acct = account.account_id
    mark_px = _mark_px(symbol, account, marks)
    readings: list[Reading] = []
    if order.is_terminal:
        readings += order_ended(risk.levels, order, source)
    elif report.exec_type in _ORDER_CHANGES:
        readings += check_order_size(limits, order, mark_px, source)
        readings += check_price_collar(limits, order, mark_px, source)
        readings += check_session(
            limits, sessions, acct, symbol, ts_event=ts, is_fill=False, source=source
        )
    position = account.positions.get(symbol)
    buy, sell = open_quantities(book, acct, symbol)
    readings += check_position_limit(
        limits,
        acct,
        symbol,
        position_qty=0 if position is None else position.qty,
        open_buy_qty=buy,
        open_sell_qty=sell,
        source=source,
    )
    turnover = risk.turnover
    if corrected:
        readings += _exposure_readings(limits, account, book, marks, source)
    elif fill is None:
        notional = opening_order_notional_16(book, account, marks)
        readings += check_buying_power(limits, account, notional, source)
    else:
        readings += check_session(
            limits, sessions, acct, symbol, ts_event=ts, is_fill=True, source=source
        )
        window = turnover_add(turnover.get(symbol, ()), ts, fill.qty * fill.price, limits)
        turnover = {**turnover, symbol: window}
        readings += check_turnover(limits, acct, symbol, window, source)
        readings += _exposure_readings(limits, account, book, marks, source)
    levels, alerts = apply_readings(risk.levels, readings, ts)
    return RiskState(levels, turnover), alerts


def exposure_readings_of(
    risk: RiskState,
    limits: RiskLimits,
    *,
    account: AccountState,
    book: OrderBook,
    marks: Mapping[str, MarkPrice],
    source: str,
    ts: int,
) -> tuple[RiskState, tuple[RiskAlert, ...]]:
    """The equity rules after the account's cash moved outside trading (a cash movement)."""
    readings = _exposure_readings(limits, account, book, marks, source)
    levels, alerts = apply_readings(risk.levels, readings, ts)
    return replace(risk, levels=levels), alerts


def assess_mark(
    risk: RiskState,
    limits: RiskLimits,
    *,
    account: AccountState,
    book: OrderBook,
    mark: MarkPrice,
    marks: Mapping[str, MarkPrice],
) -> tuple[RiskState, tuple[RiskAlert, ...]]:
    """Rules after a mark revalued one of the account's positions."""
    source = mark_event_id(mark)
    readings = _exposure_readings(limits, account, book, marks, source)
    readings += check_stale_marks(
        limits, account, {mark.symbol: mark}, mark.ts_event, [mark.symbol]
    )
    levels, alerts = apply_readings(risk.levels, readings, mark.ts_event)
    return replace(risk, levels=levels), alerts


def assess_timer(
    risk: RiskState,
    limits: RiskLimits,
    *,
    account: AccountState,
    marks: Mapping[str, MarkPrice],
    now_us: int,
) -> tuple[RiskState, tuple[RiskAlert, ...]]:
    """Time passing: stale marks, and turnover leaving its window (which may clear it)."""
    readings = check_stale_marks(limits, account, marks, now_us)
    turnover: dict[str, TurnoverWindow] = {}
    for symbol, window in risk.turnover.items():
        pruned = turnover_prune(window, now_us, limits)
        if pruned:
            turnover[symbol] = pruned
        if len(pruned) == len(window):
            continue
        key = AlertKey(TURNOVER, account.account_id, symbol)
        level = risk.levels.get(key)
        if level is not None:
            # Source: the fill the incident is about, so the clear replays identically.
            readings += [
                r._replace(source_event_id=level.source_event_id)
                for r in check_turnover(limits, account.account_id, symbol, pruned, "")
            ]
    levels, alerts = apply_readings(risk.levels, readings, now_us)
    return RiskState(levels, turnover), alerts


def invalid_execution_alert(report: ExecutionReport, reason: str) -> RiskAlert:
    severity = Severity.CRITICAL if report.exec_type in FILL_TYPES else Severity.WARNING
    key = AlertKey(INVALID_EXECUTION, report.account_id, report.symbol)
    return RiskAlert(
        alert_id=alert_id(key, report.exec_id, "INVALID"),
        rule=INVALID_EXECUTION,
        severity=severity,
        account_id=report.account_id,
        symbol=report.symbol,
        ts_event=report.ts_event,
        observed=None,
        limit=None,
        message=(
            f"execution {report.exec_id} ({report.exec_type}) for order {report.order_id} "
            f"not applied: {reason}"
        ),
        source_event_id=report.exec_id,
    )


def assess_gap(
    state: FeedRiskState, limits: RiskLimits, gap: SequenceGap
) -> tuple[FeedRiskState, tuple[RiskAlert, ...]]:
    """A sequence gap from the tick filter; first clears gaps quiet for long enough."""
    readings: Iterable[Reading] = [
        *check_gap_quiet(limits, state.levels, gap.ts_event),
        *check_feed_gap(limits, gap),
    ]
    levels, alerts = apply_readings(state.levels, readings, gap.ts_event)
    return FeedRiskState(levels), alerts


def assess_feed_timer(
    state: FeedRiskState, limits: RiskLimits, now_us: int
) -> tuple[FeedRiskState, tuple[RiskAlert, ...]]:
    levels, alerts = apply_readings(
        state.levels, check_gap_quiet(limits, state.levels, now_us), now_us
    )
    return FeedRiskState(levels), alerts
