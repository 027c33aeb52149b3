"""The risk rules of docs/design.md, each a pure function from limits and state to level readings.

A rule does not alert by itself: it says where a key stands now (`Reading`), and
`risk_levels.apply_readings` turns changes of level into alerts. A rule returns a reading
whenever it *can* judge (so a return to normal clears the alert) and nothing when it
cannot (no price to value an order with, no session hours for the instrument): a missing
input neither raises nor clears.

Observed values and limits in the readings are scale-8 decimals in the rule's unit:
money and quantities as themselves, ratios in basis points, ages in seconds.

The time-driven rules (stale market data, feed gaps) live in `risk_feed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from tapeflow.core.fixedpoint import ONE, div_round, fmt
from tapeflow.core.models import Severity, Unit
from tapeflow.core.risk.levels import AlertKey, Reading
from tapeflow.core.risk.limits import (
    RiskLimits,
    SessionHours,
    grade,
    grade_ratio,
    iso_time,
    ratio_bps,
    us_to_seconds_units,
)
from tapeflow.core.risk.order_rules import (
    ORDER_NOTIONAL,
    ORDER_SIZE,
    PRICE_COLLAR,
    check_order_size,
    check_price_collar,
    order_reference_price,
)
from tapeflow.core.trading.positions import AccountState, to_scale8

__all__ = [
    "BUYING_POWER", "CONCENTRATION", "DAILY_LOSS", "DRAWDOWN", "GROSS_EXPOSURE",
    "ORDER_NOTIONAL", "ORDER_SIZE", "POSITION_LIMIT", "PRICE_COLLAR", "SESSION_HOURS",
    "TURNOVER", "AccountFigures", "TurnoverWindow", "check_buying_power",
    "check_concentration", "check_daily_loss", "check_drawdown", "check_gross_exposure",
    "check_order_size", "check_position_limit", "check_price_collar", "check_session",
    "check_turnover", "order_reference_price", "turnover_add", "turnover_prune",
]

POSITION_LIMIT = "position_limit"
BUYING_POWER = "buying_power"
DAILY_LOSS = "daily_loss"
DRAWDOWN = "drawdown"
CONCENTRATION = "concentration"
GROSS_EXPOSURE = "gross_exposure"
TURNOVER = "turnover"
SESSION_HOURS = "session_hours"


def _money_limit(limit: int | None) -> int | None:
    """A scale-8 money limit at scale 16, to compare with exact scale-16 values."""
    return None if limit is None else limit * ONE


def _bps_units(limit_bps: int | None) -> int | None:
    return None if limit_bps is None else limit_bps * ONE


class AccountFigures(NamedTuple):
    """An account's equity and gross exposure (scale 16), summed once over its positions for
    all the rules of one step instead of once per rule."""

    equity_16: int
    gross_16: int

    @classmethod
    def of(cls, account: AccountState) -> AccountFigures:
        market = gross = 0
        for position in account.positions.values():
            value = position.qty * position.mark_px
            market += value
            gross += value if value >= 0 else -value
        return cls(account.cash_16 + market, gross)


def check_position_limit(
    limits: RiskLimits,
    account_id: str,
    symbol: str,
    *,
    position_qty: int,
    open_buy_qty: int,
    open_sell_qty: int,
    source: str,
) -> list[Reading]:
    """Worst-case position if every open order on one side filled, against the limit."""
    worst = max(abs(position_qty + open_buy_qty), abs(position_qty - open_sell_qty))
    limit = limits.position_limit(symbol)
    return [
        Reading(
            AlertKey(POSITION_LIMIT, account_id, symbol),
            grade(worst, limit, limits.warn_bps),
            worst,
            limit,
            lambda: (f"position {fmt(position_qty)} with open buys {fmt(open_buy_qty)} and "
                     f"sells {fmt(open_sell_qty)}: worst case {fmt(worst)}"),
            source,
            Unit.QUANTITY,
        )
    ]


def check_buying_power(
    limits: RiskLimits, account: AccountState, open_notional_16: int, source: str,
    figures: AccountFigures | None = None,
) -> list[Reading]:
    """Gross exposure plus the notional of open orders that would add to it, against
    max(equity, 0) x leverage. Orders that reduce a position consume no buying power: the
    caller passes the opening part only (`risk.assess.opening_order_notional_16`)."""
    if limits.max_leverage is None:
        return []
    figures = figures or AccountFigures.of(account)
    used_16 = figures.gross_16 + open_notional_16
    power_24 = max(figures.equity_16, 0) * limits.max_leverage
    return [
        Reading(
            AlertKey(BUYING_POWER, account.account_id, None),
            grade(used_16 * ONE, power_24, limits.warn_bps),
            to_scale8(used_16),
            div_round(power_24, ONE * ONE),
            lambda: (f"exposure plus opening orders {fmt(to_scale8(used_16))} against buying "
                     f"power {fmt(div_round(power_24, ONE * ONE))}"),
            source,
            Unit.MONEY,
        )
    ]


def check_daily_loss(limits: RiskLimits, account: AccountState, source: str,
                     figures: AccountFigures | None = None) -> list[Reading]:
    """Loss since the first event of the (UTC) day, realised and unrealised."""
    equity_16 = (figures or AccountFigures.of(account)).equity_16
    loss_16 = account.day_start_equity_16 - equity_16
    return [
        Reading(
            AlertKey(DAILY_LOSS, account.account_id, None),
            grade(loss_16, _money_limit(limits.max_daily_loss), limits.warn_bps),
            to_scale8(loss_16),
            limits.max_daily_loss,
            lambda: f"loss today {fmt(to_scale8(loss_16))}",
            source,
            Unit.MONEY,
        )
    ]


def check_drawdown(limits: RiskLimits, account: AccountState, source: str,
                   figures: AccountFigures | None = None) -> list[Reading]:
    """Equity below its peak, as a share of the peak (undefined, so within, if peak <= 0)."""
    peak, equity = account.peak_equity_16, (figures or AccountFigures.of(account)).equity_16
    limit = limits.max_drawdown_bps
    key = AlertKey(DRAWDOWN, account.account_id, None)
    if peak <= 0:
        return [Reading(key, None, None, _bps_units(limit), "no positive peak equity", source,
                        Unit.BPS)]
    down = max(peak - equity, 0)
    return [
        Reading(
            key,
            grade_ratio(down, peak, limit, limits.warn_bps),
            ratio_bps(down, peak),
            _bps_units(limit),
            lambda: f"equity {fmt(to_scale8(equity))} vs peak {fmt(to_scale8(peak))}",
            source,
            Unit.BPS,
        )
    ]


def check_concentration(
    limits: RiskLimits,
    account: AccountState,
    symbol: str,
    source: str,
    equity_16: int | None = None,
) -> list[Reading]:
    """One symbol's |market value| as a share of equity.

    Any holding while equity <= 0 is CRITICAL: the share is unbounded. `equity_16` may be
    passed in when checking every symbol, so equity is summed once, not once per symbol.
    """
    position = account.positions.get(symbol)
    if position is None:
        return []
    limit = limits.max_concentration_bps
    key = AlertKey(CONCENTRATION, account.account_id, symbol)
    value = abs(position.market_value_16)
    equity = account.equity_16 if equity_16 is None else equity_16
    if value == 0 or limit is None:
        return [Reading(key, None, 0, _bps_units(limit), "no exposure", source, Unit.BPS)]
    def text() -> str:
        return f"{symbol} value {fmt(to_scale8(value))} of equity {fmt(to_scale8(equity))}"

    if equity <= 0:
        return [Reading(key, Severity.CRITICAL, None, _bps_units(limit), text, source, Unit.BPS)]
    return [
        Reading(
            key,
            grade_ratio(value, equity, limit, limits.warn_bps),
            ratio_bps(value, equity),
            _bps_units(limit),
            text,
            source,
            Unit.BPS,
        )
    ]


def check_gross_exposure(limits: RiskLimits, account: AccountState, source: str,
                         figures: AccountFigures | None = None) -> list[Reading]:
    gross_16 = (figures or AccountFigures.of(account)).gross_16
    return [
        Reading(
            AlertKey(GROSS_EXPOSURE, account.account_id, None),
            grade(gross_16, _money_limit(limits.max_gross_exposure), limits.warn_bps),
            to_scale8(gross_16),
            limits.max_gross_exposure,
            lambda: f"gross exposure {fmt(to_scale8(gross_16))}",
            source,
            Unit.MONEY,
        )
    ]


TurnoverWindow = tuple[tuple[int, int], ...]
"""(bucket start, notional at scale 16) of the fills in the trailing window, oldest first."""


def _bucket_us(limits: RiskLimits) -> int:
    return max(1, limits.turnover_window_us // max(1, limits.turnover_buckets))


def turnover_add(
    window: TurnoverWindow, ts_event: int, notional_16: int, limits: RiskLimits
) -> TurnoverWindow:
    """Add a fill's notional to its time bucket and drop buckets that left the window.

    Sums are exact; only time is bucketed. A bucket counts while any part of it is inside
    the window, so a fill is counted for between one window and one window plus one bucket
    (window / `turnover_buckets`): the resolution errs towards alerting, never towards
    missing a burst, and memory is at most `turnover_buckets` + 1 entries.
    """
    bucket_us = _bucket_us(limits)
    bucket = ts_event - ts_event % bucket_us
    pruned = turnover_prune(window, ts_event, limits)
    if pruned and pruned[-1][0] == bucket:
        return (*pruned[:-1], (bucket, pruned[-1][1] + notional_16))
    if not pruned or pruned[-1][0] < bucket:
        return (*pruned, (bucket, notional_16))
    merged = dict(pruned)  # a late fill, older than the newest bucket
    merged[bucket] = merged.get(bucket, 0) + notional_16
    return turnover_prune(tuple(sorted(merged.items())), pruned[-1][0], limits)


def turnover_prune(window: TurnoverWindow, now_us: int, limits: RiskLimits) -> TurnoverWindow:
    """Drop the buckets that ended at or before now - window."""
    horizon = now_us - limits.turnover_window_us
    bucket_us = _bucket_us(limits)
    start = 0
    while start < len(window) and window[start][0] + bucket_us <= horizon:
        start += 1
    return window[start:] if start else window


def check_turnover(
    limits: RiskLimits, account_id: str, symbol: str, window: TurnoverWindow, source: str
) -> list[Reading]:
    """Rapid position change: notional traded in one symbol within the trailing window."""
    total_16 = sum(n for _, n in window)
    seconds = fmt(us_to_seconds_units(limits.turnover_window_us))
    return [
        Reading(
            AlertKey(TURNOVER, account_id, symbol),
            grade(total_16, _money_limit(limits.max_turnover_notional), limits.warn_bps),
            to_scale8(total_16),
            limits.max_turnover_notional,
            lambda: f"traded {fmt(to_scale8(total_16))} in the last {seconds} s",
            source,
            Unit.MONEY,
        )
    ]


def check_session(
    limits: RiskLimits,
    sessions: Mapping[str, SessionHours],
    account_id: str,
    symbol: str,
    *,
    ts_event: int,
    is_fill: bool,
    source: str,
) -> list[Reading]:
    """Trading outside the instrument's session hours.

    Orders are WARNING and fills CRITICAL by default (a fill has happened; an order may
    still be cancelled); the next in-session order or fill clears it.
    """
    hours = sessions.get(symbol)
    if hours is None:
        return []
    if hours.is_open(ts_event):
        severity = None
    else:
        severity = limits.session_fill_severity if is_fill else limits.session_order_severity
    what = "fill" if is_fill else "order"
    return [
        Reading(
            AlertKey(SESSION_HOURS, account_id, symbol),
            severity,
            None,
            None,
            lambda: f"{what} at {iso_time(ts_event)} outside session hours",
            source,
        )
    ]
