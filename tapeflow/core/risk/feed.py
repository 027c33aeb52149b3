"""The time-driven risk rules: stale market data for held symbols, and feed sequence gaps.

Both are judged against event time passed in by the caller (a timer's `now`, a mark's or
a gap's ts_event), never a clock read here. Their readings name the event the incident is
*about* (the stale mark, the gap) as the source, not the tick that noticed, so the alert id
is the same whichever timer tick raised it, and a replay reproduces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tapeflow.core.fixedpoint import ONE, fmt
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.models import Severity, Unit
from tapeflow.core.risk.levels import AlertKey, Levels, Reading
from tapeflow.core.risk.limits import RiskLimits, grade, iso_time, us_to_seconds_units
from tapeflow.core.trading.positions import AccountState, MarkPrice

STALE_MARKET_DATA = "stale_market_data"
FEED_GAP = "feed_gap"


def mark_event_id(mark: MarkPrice) -> str:
    return mark.source_id or f"mark:{mark.symbol}:{mark.ts_event}"


def check_stale_marks(
    limits: RiskLimits,
    account: AccountState,
    marks: Mapping[str, MarkPrice],
    now_us: int,
    symbols: Iterable[str] | None = None,
) -> list[Reading]:
    """Held symbols whose last mark is older than `max_mark_age_us`; flat ones clear.

    The last mark is the newer of the shared mark table's and the position's own. With no
    market mark ever seen, the age runs from when the position was opened.
    """
    limit = limits.max_mark_age_us
    if limit is None:
        return []
    acct = account.account_id
    limit_s = us_to_seconds_units(limit)
    out = []
    for symbol in account.positions if symbols is None else symbols:
        position = account.positions.get(symbol)
        if position is None:
            continue
        key = AlertKey(STALE_MARKET_DATA, acct, symbol)
        if position.qty == 0:
            source = f"flat:{acct}:{symbol}:{position.version}"
            out.append(Reading(key, None, None, limit_s, "position closed", source,
                               Unit.SECONDS))
            continue
        mark = marks.get(symbol)
        if mark is not None and (position.mark_ts is None or mark.ts_event >= position.mark_ts):
            seen, source = mark.ts_event, mark_event_id(mark)
        elif position.mark_ts is not None:
            seen, source = position.mark_ts, f"mark:{symbol}:{position.mark_ts}"
        else:
            seen = position.opened_ts if position.opened_ts is not None else position.ts_last
            source = f"open:{acct}:{symbol}:{seen}"
        age = max(now_us - seen, 0)
        age_s = us_to_seconds_units(age)
        out.append(
            Reading(
                key,
                grade(age, limit, limits.warn_bps),
                age_s,
                limit_s,
                f"last mark for held {symbol} is {fmt(age_s)} s old",
                source,
                Unit.SECONDS,
            )
        )
    return out


def gap_event_id(gap: SequenceGap) -> str:
    return f"gap:{gap.kind}:{gap.venue}:{gap.symbol}:{gap.expected}:{gap.received}"


def check_feed_gap(limits: RiskLimits, gap: SequenceGap) -> list[Reading]:
    """Missing sequence numbers: CRITICAL from `gap_critical_missing` on, else WARNING.

    Not an account's alert: account_id is None; venue and stream kind are the key's scope,
    so a gap on one venue does not hide a gap on another. A further gap while the alert
    stands only extends it (or escalates it); `check_gap_quiet` clears it.
    """
    if gap.missing <= 0:
        return []
    severity = Severity.CRITICAL if gap.missing >= limits.gap_critical_missing else Severity.WARNING
    return [
        Reading(
            AlertKey(FEED_GAP, None, gap.symbol, f"{gap.venue}/{gap.kind}"),
            severity,
            gap.missing * ONE,
            limits.gap_critical_missing * ONE,
            f"{gap.venue} {gap.symbol} {gap.kind}s: expected seq {gap.expected}, got "
            f"{gap.received} ({gap.missing} missing)",
            gap_event_id(gap),
            Unit.COUNT,
        )
    ]


def check_gap_quiet(limits: RiskLimits, levels: Levels, now_us: int) -> list[Reading]:
    """Clear feed-gap alerts after `gap_clear_after_us` of event time with no new gap."""
    return [
        Reading(
            key,
            None,
            None,
            None,
            f"no sequence gap on {key.scope} {key.symbol} since {iso_time(level.last_ts)}",
            level.source_event_id,
            Unit.COUNT,
        )
        for key, level in levels.items()
        if key.rule == FEED_GAP and now_us - level.last_ts >= limits.gap_clear_after_us
    ]
