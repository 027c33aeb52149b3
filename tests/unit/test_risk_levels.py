"""The edge trigger, alert ids, session hours and feed-gap alerts."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tapeflow.core.market.rejections import SequenceGap, TickKind
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.core.risk.assess import FeedRiskState, assess_feed_timer, assess_gap
from tapeflow.core.risk.levels import AlertKey, Levels, Reading, alert_id, apply_readings
from tapeflow.core.risk.limits import (
    RiskLimitBook,
    RiskLimits,
    SessionHours,
    grade,
    grade_ratio,
    ratio_bps,
)
from tapeflow.core.risk.rules import check_session
from tests.support.trading_builders import T0, u

W, C, CLR = Severity.WARNING, Severity.CRITICAL, Severity.INFO
KEY = AlertKey("r", "ACC", "XYZ")


def reading(severity: Severity | None, source: str = "s", key: AlertKey = KEY) -> Reading:
    return Reading(key, severity, 1, 2, "msg", source)


def us(text: str) -> int:
    dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_alert_ids_are_deterministic_and_distinguish_every_component() -> None:
    base = alert_id(KEY, "e1", "WARNING")
    assert base == alert_id(AlertKey("r", "ACC", "XYZ"), "e1", "WARNING")
    assert len(base) == 32 and int(base, 16) >= 0
    variants = {
        alert_id(AlertKey("r2", "ACC", "XYZ"), "e1", "WARNING"),
        alert_id(AlertKey("r", "ACC2", "XYZ"), "e1", "WARNING"),
        alert_id(AlertKey("r", "ACC", "XYZ2"), "e1", "WARNING"),
        alert_id(AlertKey("r", "ACC", "XYZ", "v"), "e1", "WARNING"),
        alert_id(KEY, "e2", "WARNING"),
        alert_id(KEY, "e1", "CRITICAL"),
        alert_id(AlertKey("r", None, "ACCXYZ"), "e1", "WARNING"),
    }
    assert base not in variants and len(variants) == 7


def test_replay_of_the_same_readings_gives_the_same_alerts() -> None:
    script = [reading(W, "a"), reading(C, "b"), reading(None, "c"), reading(W, "d")]
    runs = []
    for _ in range(2):
        levels: Levels = {}
        alerts: list[RiskAlert] = []
        for i, r in enumerate(script):
            levels, out = apply_readings(levels, [r], T0 + i)
            alerts += out
        runs.append(alerts)
    assert runs[0] == runs[1] and [a.severity for a in runs[0]] == [W, C, CLR, W]


def test_no_readings_or_within_limits_leave_levels_untouched() -> None:
    levels: Levels = {}
    out_levels, alerts = apply_readings(levels, [reading(None)], T0)
    assert out_levels is levels and alerts == ()


def test_keys_are_independent_and_several_readings_fold_in_order() -> None:
    other = AlertKey("r", "ACC", "ABC")
    levels, alerts = apply_readings(
        {}, [reading(W), reading(C, key=other), reading(C), reading(None, key=other)], T0
    )
    assert [(a.symbol, a.severity) for a in alerts] == [
        ("XYZ", W),
        ("ABC", C),
        ("XYZ", C),
        ("ABC", CLR),
    ]
    assert set(levels) == {KEY} and levels[KEY].severity == C and levels[KEY].since_ts == T0


def test_grading_is_exact_at_the_boundaries() -> None:
    assert grade(80, 100, 8_000) is None
    assert grade(81, 100, 8_000) == W
    assert grade(100, 100, 8_000) == W
    assert grade(101, 100, 8_000) == C
    assert grade(10**30, None, 8_000) is None
    # 1/3 is above 3333 bps, below 3334; no rounding before comparing.
    assert grade_ratio(1, 3, 3_333, 10_000) == C
    assert grade_ratio(1, 3, 3_334, 10_000) is None
    assert ratio_bps(1, 3) == u("3333.33333333")


def test_limit_book_default_and_overrides() -> None:
    book = RiskLimitBook().with_override("VIP", max_order_qty=u(7))
    assert book.for_account("VIP").max_order_qty == u(7)
    assert book.for_account("other") == RiskLimits()
    assert book.for_account(None) is book.default
    assert pickle.loads(pickle.dumps(book)) == book


NYSE = SessionHours(
    open_us=(9 * 60 + 30) * 60_000_000, close_us=16 * 3_600_000_000, tz="America/New_York"
)


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("2026-01-05T14:30:00", True),  # Monday 09:30 EST
        ("2026-01-05T14:29:59.999999", False),
        ("2026-01-05T20:59:59", True),
        ("2026-01-05T21:00:00", False),  # 16:00 EST: close is exclusive
        ("2026-07-06T13:30:00", True),  # Monday 09:30 EDT: the zone handles DST
        ("2026-07-06T13:29:00", False),
        ("2026-01-10T15:00:00", False),  # Saturday
    ],
)
def test_session_hours_in_local_time(when: str, is_open: bool) -> None:
    assert NYSE.is_open(us(when)) is is_open


def test_overnight_session_belongs_to_the_day_it_opened() -> None:
    # Sunday 22:00 to Friday 21:00 UTC, say: opens 22:00 Mon-Thu and Sunday.
    fx = SessionHours(
        open_us=22 * 3_600_000_000, close_us=21 * 3_600_000_000, weekdays=frozenset({6, 0, 1, 2, 3})
    )
    assert fx.is_open(us("2026-01-04T22:30:00"))  # Sunday evening
    assert fx.is_open(us("2026-01-05T03:00:00"))  # Monday early: Sunday's session
    assert not fx.is_open(us("2026-01-05T21:30:00"))  # the daily break
    assert fx.is_open(us("2026-01-09T20:00:00"))  # Friday: Thursday's session
    assert not fx.is_open(us("2026-01-09T22:30:00"))  # Friday evening: no Friday session


def test_session_rule_orders_warn_fills_escalate_in_session_clears() -> None:
    limits = RiskLimits()
    sessions = {"XYZ": NYSE}
    before_open = us("2026-01-05T13:00:00")

    def run(ts: int, is_fill: bool, source: str) -> list[Reading]:
        return check_session(
            limits, sessions, "ACC", "XYZ", ts_event=ts, is_fill=is_fill, source=source
        )

    levels: Levels = {}
    got = []
    for ts, is_fill in [
        (T0, False),
        (before_open, False),
        (before_open + 1, False),
        (before_open + 2, True),
        (T0 + 5, True),
        (us("2026-01-10T15:00:00"), False),
    ]:
        levels, alerts = apply_readings(levels, run(ts, is_fill, f"e{ts}"), ts)
        got.append([a.severity for a in alerts])
    assert got == [[], [W], [], [C], [CLR], [W]]
    assert check_session(limits, {}, "ACC", "XYZ", ts_event=T0, is_fill=True, source="s") == []


def gap(missing: int, ts: int, venue: str = "XNAS", expected: int = 100) -> SequenceGap:
    return SequenceGap(TickKind.TRADE, venue, "XYZ", expected, expected + missing, missing, ts)


def test_feed_gap_alerts_once_escalates_and_clears_after_quiet_period() -> None:
    limits = replace(RiskLimits(), gap_critical_missing=50, gap_clear_after_us=1_000)
    state = FeedRiskState()
    state, a = assess_gap(state, limits, gap(3, T0))
    assert [x.severity for x in a] == [W] and a[0].account_id is None
    assert a[0].observed == u(3) and a[0].source_event_id == "gap:trade:XNAS:XYZ:100:103"
    state, a = assess_gap(state, limits, gap(4, T0 + 500, expected=200))
    assert a == ()  # still the same incident
    state, a = assess_gap(state, limits, gap(60, T0 + 900, expected=300))
    assert [x.severity for x in a] == [C]
    state, a = assess_gap(state, limits, gap(2, T0 + 950, venue="XNYS"))
    assert [x.severity for x in a] == [W]  # another venue is another key
    state, a = assess_feed_timer(state, limits, T0 + 1_899)
    assert a == ()  # 999 us since the last XNAS gap
    state, a = assess_feed_timer(state, limits, T0 + 1_900)
    assert [x.severity for x in a] == [CLR]
    assert a[0].message.startswith("cleared") and "XNAS" in a[0].message
    state, a = assess_feed_timer(state, limits, T0 + 1_900)
    assert a == ()
    state, a = assess_gap(state, limits, gap(1, T0 + 5_000, expected=400))
    # XNYS quiet long enough: cleared; XNAS re-breached as a new incident.
    assert sorted((x.severity, x.rule) for x in a) == [(CLR, "feed_gap"), (W, "feed_gap")]
    assert len(state.levels) == 1


def test_feed_gap_clear_id_names_the_last_gap_not_the_timer() -> None:
    limits = replace(RiskLimits(), gap_clear_after_us=10)
    s1, _ = assess_gap(FeedRiskState(), limits, gap(1, T0))
    _, a1 = assess_feed_timer(s1, limits, T0 + 10)
    _, a2 = assess_feed_timer(s1, limits, T0 + 99_999)
    assert a1[0].alert_id == a2[0].alert_id
