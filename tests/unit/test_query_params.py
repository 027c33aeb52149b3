"""Query arguments: times to microseconds (UTC unless an offset is given), half-open ranges,
coarse-bucket alignment, severities as a minimum, and one-line errors for typos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.query_params import (
    EARLIEST_US,
    INTERVALS,
    LATEST_US,
    QueryInputError,
    TimeRange,
    interval_us,
    severities_from,
    to_us,
)

T0 = 1_767_623_400_000_000  # 2026-01-05T14:30:00Z


@pytest.mark.parametrize(("text", "want"), [
    ("2026-01-05T14:30:00Z", T0),
    ("2026-01-05T14:30:00+00:00", T0),
    ("2026-01-05T14:30:00", T0),  # no offset: UTC, not the machine's zone
    ("2026-01-05 14:30", T0),
    ("2026-01-05T15:30:00+01:00", T0),
    ("2026-01-05T09:30:00-05:00", T0),
    ("2026-01-05T14:30:00.000001Z", T0 + 1),
    ("2026-01-05", T0 - (14 * 60 + 30) * 60_000_000),
    ("  2026-01-05T14:30Z ", T0),
])
def test_iso_times(text: str, want: int) -> None:
    assert to_us(text, "start", 0) == want


@pytest.mark.parametrize("text", ["yesterday", "14:30", "2026-13-01", "", "1767623400"])
def test_bad_times_name_the_option(text: str) -> None:
    with pytest.raises(QueryInputError, match=r"^--end: .* is not an ISO-8601 time"):
        to_us(text, "end", 0)


def test_datetimes_and_defaults() -> None:
    assert to_us(None, "start", 42) == 42
    assert to_us(datetime(2026, 1, 5, 14, 30), "start", 0) == T0  # noqa: DTZ001 - naive on purpose
    assert to_us(datetime(2026, 1, 5, 16, 30, tzinfo=timezone(timedelta(hours=2))), "s", 0) == T0
    span = TimeRange.of(None, None)
    assert (span.start_us, span.end_us) == (EARLIEST_US, LATEST_US)
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=LATEST_US) == \
        datetime(2300, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("start", "end"), [(T0, T0), (T0 + 1, T0)])
def test_empty_or_reversed_range_is_refused(start: int, end: int) -> None:
    with pytest.raises(QueryInputError, match="--end must be after --start"):
        TimeRange.of(_dt(start), _dt(end))


@given(st.integers(0, 10**17), st.integers(1, 10**12), st.sampled_from(list(INTERVALS.values())))
def test_alignment_keeps_exactly_the_buckets_that_start_in_range(start: int, length: int,
                                                                 width: int) -> None:
    """A part p (multiple of 1m) is read iff its coarse bucket starts in [start, end)."""
    span = TimeRange(start, start + length)
    whole = span.aligned(width)
    assert whole.start_us % width == 0 and whole.end_us % width == 0
    for part in (whole.start_us - 60_000_000, whole.start_us, whole.end_us - 60_000_000,
                 whole.end_us):
        coarse = part - part % width
        assert (whole.start_us <= part < whole.end_us) == (start <= coarse < start + length)


def test_intervals() -> None:
    assert interval_us("5m") == 300_000_000 and interval_us("1d") == 86_400_000_000
    with pytest.raises(QueryInputError, match="unknown interval '2m'; choose from 1s, 1m, 5m"):
        interval_us("2m")


@pytest.mark.parametrize(("minimum", "want"), [
    (None, ["INFO", "WARNING", "CRITICAL"]),
    ("info", ["INFO", "WARNING", "CRITICAL"]),
    ("WARNING", ["WARNING", "CRITICAL"]),
    ("critical", ["CRITICAL"]),
])
def test_severity_is_a_minimum(minimum: str | None, want: list[str]) -> None:
    assert severities_from(minimum) == want


def test_unknown_severity() -> None:
    with pytest.raises(QueryInputError, match="unknown severity 'loud'"):
        severities_from("loud")


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
