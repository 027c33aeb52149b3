"""Risk limits as frozen configuration, per-account overrides, session hours, and grading.

Severity tiers (one rule for every limit, so operators learn it once): an observation
strictly above the limit is CRITICAL; strictly above `warn_bps` of the limit (default
8,000 bps = 80 %) is WARNING; otherwise the rule is within limits. Limits are inclusive
maxima: an order of exactly `max_order_qty` is allowed. Comparisons are exact integer
cross-multiplications; no ratio is rounded before it is compared. A limit set to None
disables its rule.

Units: quantities and money are scale-8 integers (`fixedpoint`); ratios are basis points
(integers); durations are microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tapeflow.core.fixedpoint import ONE, div_round
from tapeflow.core.models import Severity

BPS = 10_000
SECOND_US = 1_000_000
DAY_OF_US = 86_400 * SECOND_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS_PER_US: int = ONE // SECOND_US


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits of one account. Defaults are deliberately conservative placeholders."""

    warn_bps: int = 8_000
    max_order_qty: int | None = 100_000 * ONE
    max_order_notional: int | None = 1_000_000 * ONE
    price_collar_bps: int | None = 500
    max_position_qty: int | None = 500_000 * ONE
    symbol_position_qty: tuple[tuple[str, int], ...] = ()
    """Per-symbol overrides of `max_position_qty`, as (symbol, qty) pairs."""
    max_leverage: int | None = ONE
    """Buying power = max(equity, 0) x max_leverage (scale 8; 1.0 = a cash account)."""
    max_daily_loss: int | None = 50_000 * ONE
    max_drawdown_bps: int | None = 2_000
    max_concentration_bps: int | None = 5_000
    """One symbol's |market value| as a share of equity."""
    max_gross_exposure: int | None = 5_000_000 * ONE
    turnover_window_us: int = 60 * SECOND_US
    max_turnover_notional: int | None = 2_000_000 * ONE
    """Traded notional per (account, symbol) within the trailing `turnover_window_us`."""
    turnover_buckets: int = 60
    """Resolution of the turnover window: fills are summed into this many time buckets per
    window (memory per (account, symbol) is bounded by it, not by the fill rate)."""
    max_mark_age_us: int | None = 60 * SECOND_US
    """A held symbol whose last mark is older than this has stale market data."""
    gap_critical_missing: int = 100
    """A feed gap of at least this many missing sequence numbers is CRITICAL, else WARNING."""
    gap_clear_after_us: int = 60 * SECOND_US
    """A gap alert clears after this much event time with no further gap."""
    session_order_severity: Severity = Severity.WARNING
    session_fill_severity: Severity = Severity.CRITICAL

    def position_limit(self, symbol: str) -> int | None:
        for name, qty in self.symbol_position_qty:
            if name == symbol:
                return qty
        return self.max_position_qty


@dataclass(frozen=True, slots=True)
class RiskLimitBook:
    """A default `RiskLimits` and whole-record overrides per account."""

    default: RiskLimits = RiskLimits()
    overrides: Mapping[str, RiskLimits] = field(default_factory=dict)

    def for_account(self, account_id: str | None) -> RiskLimits:
        if account_id is None:
            return self.default
        return self.overrides.get(account_id, self.default)

    def with_override(self, account_id: str, **changes: object) -> RiskLimitBook:
        """A book where `account_id` has the default limits with `changes` applied."""
        limits = replace(self.default, **changes)  # type: ignore[arg-type]
        return RiskLimitBook(self.default, {**self.overrides, account_id: limits})


@dataclass(frozen=True, slots=True)
class SessionHours:
    """When an instrument trades: local time of day [open, close) on the given weekdays.

    `open_us`/`close_us` are microseconds after local midnight in `tz` (an IANA zone, so
    daylight saving is handled by the zone database, not by hand). close < open is an
    overnight session; its after-midnight part belongs to the session that opened the
    previous local day. `weekdays` uses Monday = 0.
    """

    open_us: int
    close_us: int
    weekdays: frozenset[int] = frozenset(range(5))
    tz: str = "UTC"

    def is_open(self, ts_us: int) -> bool:
        local = (_EPOCH + timedelta(microseconds=ts_us)).astimezone(ZoneInfo(self.tz))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        t = (local - midnight) // timedelta(microseconds=1)
        day = local.weekday()
        if self.open_us <= self.close_us:
            return day in self.weekdays and self.open_us <= t < self.close_us
        if t >= self.open_us:
            return day in self.weekdays
        return t < self.close_us and (day - 1) % 7 in self.weekdays


def grade(observed: int, limit: int | None, warn_bps: int) -> Severity | None:
    """Severity of `observed` against an inclusive maximum `limit` (same units)."""
    if limit is None:
        return None
    if observed > limit:
        return Severity.CRITICAL
    if observed * BPS > limit * warn_bps:
        return Severity.WARNING
    return None


def grade_ratio(num: int, den: int, limit_bps: int | None, warn_bps: int) -> Severity | None:
    """Severity of the ratio num/den (den > 0) against a limit in basis points, exactly."""
    if limit_bps is None:
        return None
    if num * BPS > limit_bps * den:
        return Severity.CRITICAL
    if num * BPS * BPS > limit_bps * warn_bps * den:
        return Severity.WARNING
    return None


def ratio_bps(num: int, den: int) -> int:
    """num/den in basis points as scale-8 units (for display), rounded half-even."""
    return div_round(num * BPS * ONE, den)


def iso_time(ts_us: int) -> str:
    """Event time for a message: ISO-8601 UTC to the microsecond (never raw microseconds)."""
    when = _EPOCH + timedelta(microseconds=ts_us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_to_seconds_units(us: int) -> int:
    """Microseconds as scale-8 seconds (exact: one microsecond is 100 units)."""
    return us * _UNITS_PER_US
