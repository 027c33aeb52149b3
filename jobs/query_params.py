"""What a query is asked for, checked and normalised before any store is opened.

Why a module of its own: the command line, the Python API and the chart all accept the same
times and intervals, and a user's typo must end in one line that says what was wrong
(`QueryInputError`), not in an engine error about a malformed SQL parameter.

Times: ISO-8601 text or `datetime`; a value without an offset is UTC (a trading platform's
clock, not the laptop's). Everything becomes integer microseconds since the epoch, the core's
unit, and is bound to SQL as an integer, so no time zone or rounding is applied on the way.
Ranges are half-open, [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from tapeflow.core.market.candles import HOUR_US, MINUTE_US, SECOND_US
from tapeflow.core.models import Severity
from tapeflow.errors import UserError

DAY_US = 24 * HOUR_US
INTERVALS = MappingProxyType({
    "1s": SECOND_US,
    "1m": MINUTE_US,
    "5m": 5 * MINUTE_US,
    "15m": 15 * MINUTE_US,
    "1h": HOUR_US,
    "1d": DAY_US,
})
"""Candle intervals: 1s and 1m are stored, the rest are rolled up from 1m at query time."""

EARLIEST_US = 0
LATEST_US = 10_413_792_000_000_000
"""2300-01-01 00:00:00 UTC: "no end", just past the last time ClickHouse's DateTime64 holds."""


class QueryInputError(UserError, ValueError):
    """A query argument the user got wrong; the message is one line, fit for the terminal."""


def to_us(value: datetime | str | None, name: str, default: int) -> int:
    """Microseconds since the epoch, UTC; `default` when `value` is None."""
    if value is None:
        return default
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise QueryInputError(
                f"--{name}: {text!r} is not an ISO-8601 time (e.g. 2024-03-01T14:30:00Z)"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start_us, end_us) in microseconds since the epoch, UTC."""

    start_us: int
    end_us: int

    @classmethod
    def of(cls, start: datetime | str | None, end: datetime | str | None) -> TimeRange:
        start_us = to_us(start, "start", EARLIEST_US)
        end_us = to_us(end, "end", LATEST_US)
        if end_us <= start_us:
            raise QueryInputError("--end must be after --start (the range is [start, end))")
        return cls(start_us, end_us)

    def aligned(self, width_us: int) -> TimeRange:
        """The range of the buckets of `width_us` that START in [start, end), as a range of
        their parts: both ends rounded up to the width. A coarse candle is returned whole or not
        at all, never built from some of its parts."""
        return TimeRange(_ceil(self.start_us, width_us), _ceil(self.end_us, width_us))


def _ceil(us: int, width: int) -> int:
    return -(-us // width) * width


def interval_us(interval: str) -> int:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise QueryInputError(
            f"unknown interval {interval!r}; choose from {', '.join(INTERVALS)}"
        ) from None


def severities_from(minimum: str | None) -> list[str]:
    """Severities at or above `minimum` (None: all), the same order as alerts escalate."""
    if minimum is None:
        return [s.value for s in Severity]
    try:
        floor = Severity(minimum.upper())
    except ValueError:
        raise QueryInputError(
            f"unknown severity {minimum!r}; choose from {', '.join(s.value for s in Severity)}"
        ) from None
    return [s.value for s in Severity if s.rank >= floor.rank]
