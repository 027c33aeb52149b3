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
from dataclasses import dataclass, field

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.models import ExecType, ExecutionReport, RiskAlert, Severity
from tapeflow.core.risk.exposure import (
    Opening,
    concentration_readings,
    mark_px_of,
    opening_16,
    refresh_opening,
)
from tapeflow.core.risk.feed import (
    STALE_MARKET_DATA,
    check_feed_gap,
    check_gap_quiet,
    check_stale_marks,
    mark_event_id,
)
from tapeflow.core.risk.levels import AlertKey, Level, Reading, alert_id, apply_readings
from tapeflow.core.risk.limits import RiskLimits, SessionHours, grade, grade_ratio
from tapeflow.core.risk.order_rules import check_order_size, check_price_collar, order_ended
from tapeflow.core.risk.rules import (
    BUYING_POWER,
    DAILY_LOSS,
    DRAWDOWN,
    GROSS_EXPOSURE,
    TURNOVER,
    AccountFigures,
    TurnoverWindow,
    check_buying_power,
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
    opening: Opening | None = None
    """The opening-order notional by symbol (None: not yet built, built from the book on
    first use)."""
    concentration_bound_16: int | None = None
    """An upper bound on |market value| (scale 16) of the positions with no concentration
    incident open, raised by every position change the rules see and made exact by every
    full concentration check; None: unknown (`_concentration`)."""
    concentration_open: tuple[str, ...] | None = None
    """The symbols with a concentration incident open, in the order of the account's
    positions; None: unknown."""


@dataclass(frozen=True, slots=True)
class FeedRiskState:
    levels: Mapping[AlertKey, Level] = field(default_factory=dict)


def _may_alert(levels: Mapping[AlertKey, Level], rule: str, account_id: str,
               severity: Severity | None) -> bool:
    """Whether an account-wide rule's reading can change its level: it breaches now, or an
    incident of it is open."""
    return severity is not None or (bool(levels) and AlertKey(rule, account_id, None) in levels)


def _exposure_readings(
    limits: RiskLimits,
    account: AccountState,
    risk: RiskState,
    book: OrderBook,
    *,
    marks: Mapping[str, MarkPrice],
    source: str,
    changed: str | None,
) -> tuple[list[Reading], RiskState]:
    """The rules that move with equity or gross exposure, read from the account's running
    totals; `changed`: the symbol whose position (or orders) the event changed. Returns the
    readings and `risk` with its kept figures updated (not its levels)."""
    figures = AccountFigures.of(account)
    opening = risk.opening
    if opening is None or changed is not None:
        opening = refresh_opening(opening, book, account, marks, () if changed is None
                                   else (changed,))
    # A reading within limits for a key with no level changes nothing (`apply_readings`):
    # each rule is graded first, with its own arithmetic, and read only when it can alert.
    levels, acct, warn = risk.levels, account.account_id, limits.warn_bps
    equity, gross = figures
    out: list[Reading] = []
    loss_limit = limits.max_daily_loss
    if _may_alert(levels, DAILY_LOSS, acct, grade(
            account.day_start_equity_16 - equity,
            None if loss_limit is None else loss_limit * ONE, warn)):
        out += check_daily_loss(limits, account, source, figures)
    peak = account.peak_equity_16
    if _may_alert(levels, DRAWDOWN, acct, None if peak <= 0 else grade_ratio(
            max(peak - equity, 0), peak, limits.max_drawdown_bps, warn)):
        out += check_drawdown(limits, account, source, figures)
    gross_limit = limits.max_gross_exposure
    if _may_alert(levels, GROSS_EXPOSURE, acct, grade(
            gross, None if gross_limit is None else gross_limit * ONE, warn)):
        out += check_gross_exposure(limits, account, source, figures)
    if limits.max_leverage is not None:
        open_16 = opening_16(opening, book, account, marks)
        if _may_alert(levels, BUYING_POWER, acct, grade(
                (gross + open_16) * ONE, max(equity, 0) * limits.max_leverage, warn)):
            out += check_buying_power(limits, account, open_16, source, figures)
    concentration, bound, is_open = concentration_readings(
        limits, account, (risk.concentration_bound_16, risk.concentration_open),
        changed=changed, source=source, equity_16=figures.equity_16)
    out += concentration
    return out, RiskState(risk.levels, risk.turnover, opening, bound, is_open)


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
    mark_px = mark_px_of(symbol, account, marks)
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
        exposure, risk = _exposure_readings(limits, account, risk, book, marks=marks,
                                            source=source, changed=symbol)
        readings += exposure
    elif fill is None:
        opening = refresh_opening(risk.opening, book, account, marks, (symbol,))
        risk = RiskState(risk.levels, risk.turnover, opening, risk.concentration_bound_16,
                         risk.concentration_open)
        readings += check_buying_power(limits, account, opening_16(opening, book, account,
                                                                    marks), source)
    else:
        readings += check_session(
            limits, sessions, acct, symbol, ts_event=ts, is_fill=True, source=source
        )
        window = turnover_add(turnover.get(symbol, ()), ts, fill.qty * fill.price, limits)
        turnover = {**turnover, symbol: window}
        readings += check_turnover(limits, acct, symbol, window, source)
        exposure, risk = _exposure_readings(limits, account, risk, book, marks=marks,
                                            source=source, changed=symbol)
        readings += exposure
    levels, alerts = apply_readings(risk.levels, readings, ts)
    return RiskState(levels, turnover, risk.opening, risk.concentration_bound_16,
                     risk.concentration_open), alerts


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
    readings, risk = _exposure_readings(limits, account, risk, book, marks=marks,
                                        source=source, changed=None)
    levels, alerts = apply_readings(risk.levels, readings, ts)
    return RiskState(levels, risk.turnover, risk.opening, risk.concentration_bound_16,
                     risk.concentration_open), alerts


def _stale_after_mark(limits: RiskLimits, account: AccountState, risk: RiskState,
                      mark: MarkPrice) -> list[Reading]:
    """The stale-data reading of the symbol a mark just revalued: its age is 0, so it can
    change a level only if an incident is open (or the limit is below 0)."""
    stale = AlertKey(STALE_MARKET_DATA, account.account_id, mark.symbol)
    if stale in risk.levels or grade(0, limits.max_mark_age_us, limits.warn_bps) is not None:
        return check_stale_marks(limits, account, {mark.symbol: mark}, mark.ts_event,
                                 [mark.symbol])
    return []


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
    readings, risk = _exposure_readings(limits, account, risk, book, marks=marks,
                                        source=source, changed=mark.symbol)
    readings += _stale_after_mark(limits, account, risk, mark)
    levels, alerts = apply_readings(risk.levels, readings, mark.ts_event)
    return RiskState(levels, risk.turnover, risk.opening, risk.concentration_bound_16,
                     risk.concentration_open), alerts


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
    return RiskState(levels, turnover, risk.opening, risk.concentration_bound_16,
                     risk.concentration_open), alerts


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
