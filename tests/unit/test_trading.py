"""The trading step end to end: orders -> positions -> risk, idempotence and replay."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.models import ExecutionReport, RiskAlert, Severity, Side
from tapeflow.core.risk.levels import AlertKey, alert_id
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingOutput,
    TradingState,
    new_trading_state,
    newer_mark,
    on_execution,
    on_mark,
    on_timer,
)
from tapeflow.core.trading.orders import Applied, Duplicate, Invalid
from tapeflow.core.trading.positions import MarkPrice
from tests.support.trading_builders import T0, OrderSim, u

W, C, CLR = Severity.WARNING, Severity.CRITICAL, Severity.INFO
CONFIG = TradingConfig()
SECOND = 1_000_000


def fresh(cash: int = u(1_000_000)) -> TradingState:
    return new_trading_state("ACC", cash)


def run(state: TradingState, report: ExecutionReport) -> tuple[TradingState, TradingOutput]:
    return on_execution(state, report, CONFIG, {})


def test_fat_finger_order_alerts_with_a_deterministic_id() -> None:
    sim = OrderSim("big", qty=u(200_000), limit_price=u(1))
    report = sim.new()
    _, out = run(fresh(), report)
    assert isinstance(out.outcome, Applied) and out.order is not None
    (alert,) = [a for a in out.alerts if a.rule == "order_size"]
    assert alert.severity == C and alert.observed == u(200_000)
    assert alert.alert_id == alert_id(
        AlertKey("order_size", "ACC", "XYZ", "big"), report.exec_id, "CRITICAL"
    )
    assert out.position is None and out.account is None  # no fill, nothing booked


def test_invalid_report_changes_nothing_and_alerts_the_same_way_every_time() -> None:
    state = fresh()
    ghost = OrderSim("ghost", qty=u(5)).fill(u(5), u(100))
    outs = []
    for _ in range(2):
        after, out = run(state, ghost)
        assert after is state and isinstance(out.outcome, Invalid)
        outs.append(out.alerts)
    (alert,) = outs[0]
    assert outs[0] == outs[1]
    assert alert.rule == "invalid_execution" and alert.severity == C
    assert alert.source_event_id == ghost.exec_id and "unknown order" in alert.message
    after, out = run(state, ghost._replace(account_id="OTHER"))
    assert after is state and out.alerts[0].severity == C and "routed" in out.alerts[0].message
    cancel = OrderSim("ghost2", qty=u(5)).cancel()
    assert run(state, cancel)[1].alerts[0].severity == W


def test_fill_books_position_cash_and_versions_and_duplicates_change_nothing() -> None:
    sim = OrderSim("o1", qty=u(10))
    state, _ = run(fresh(), sim.new())
    f = sim.fill(u(4), u(100), commission=u(1))
    state, out = run(state, f)
    assert out.position is not None and out.position.qty == u(4)
    assert out.account is not None and out.account.cash == u(1_000_000) - u(401)
    same, out2 = run(state, f)
    assert same is state and isinstance(out2.outcome, Duplicate)
    assert out2 == TradingOutput(out2.outcome)
    # A new exec_id whose cum_qty does not advance is no redelivery: invalid, alerted.
    same, out3 = run(state, f._replace(exec_id="resent"))
    assert same is state and isinstance(out3.outcome, Invalid)
    (alert,) = out3.alerts
    assert (alert.rule, alert.severity, alert.source_event_id) == ("invalid_execution", C,
                                                                   "resent")


def test_mark_revalues_and_drawdown_alerts_then_clears() -> None:
    sim = OrderSim("o1", qty=u(1_000), limit_price=u(100))
    limits = RiskLimitBook(RiskLimits(max_drawdown_bps=1_000, max_daily_loss=None))
    config = replace(CONFIG, limits=limits)
    state = fresh(cash=u(100_000))
    marks: dict[str, MarkPrice] = {}
    for report in (sim.new(), sim.fill(u(1_000), u(100))):
        state, _ = on_execution(state, report, config, marks)
    got = []
    for i, px in enumerate([u(95), u(91), u(89), u(80), u(99)]):
        mark = MarkPrice("XYZ", px, T0 + (i + 1) * SECOND, f"trade:{i}")
        marks["XYZ"] = mark
        state, out = on_mark(state, mark, config, marks)
        assert out.position is not None and out.position.mark_px == px
        got.append([a.severity for a in out.alerts if a.rule == "drawdown"])
    # Peak 100k; drawdown 5% (within 8% warn), 9% W, 11% C, 20% (no repeat), 1% clear.
    assert got == [[], [W], [C], [], [CLR]]
    same, out = on_mark(state, MarkPrice("ABC", u(1), T0), config, marks)
    assert same is state and out == TradingOutput()


def test_stale_market_data_via_timer_and_fresh_mark_clears() -> None:
    sim = OrderSim("o1", qty=u(1))
    m0 = MarkPrice("XYZ", u(100), T0, "trade:0")
    marks = {"XYZ": m0}
    state = fresh()
    for report in (sim.new(), sim.fill(u(1), u(100))):
        state, _ = on_execution(state, report, CONFIG, marks)
    state_a, out_a = on_timer(state, T0 + 50 * SECOND, CONFIG, marks)
    _, out_b = on_timer(state, T0 + 55 * SECOND, CONFIG, marks)
    assert [a.severity for a in out_a.alerts] == [W]
    assert out_a.alerts[0].alert_id == out_b.alerts[0].alert_id  # same incident, same id
    state, out = on_timer(state_a, T0 + 61 * SECOND, CONFIG, marks)
    assert [a.severity for a in out.alerts] == [C]
    state, out = on_timer(state, T0 + 62 * SECOND, CONFIG, marks)
    assert out.alerts == ()
    m1 = MarkPrice("XYZ", u(101), T0 + 63 * SECOND, "trade:1")
    assert newer_mark(marks, m1) and not newer_mark({"XYZ": m1}, m0)
    marks = {"XYZ": m1}
    state, out = on_mark(state, m1, CONFIG, marks)
    assert [(a.rule, a.severity) for a in out.alerts] == [("stale_market_data", CLR)]


def test_turnover_alerts_on_burst_and_clears_when_the_window_passes() -> None:
    limits = RiskLimits(max_turnover_notional=u(1_000), turnover_window_us=10 * SECOND)
    config = replace(CONFIG, limits=RiskLimitBook(limits))
    state = fresh()
    sim = OrderSim("o1", qty=u(100), limit_price=u(100))
    alerts: list[RiskAlert] = []
    for report in (sim.new(), sim.fill(u(5), u(100)), sim.fill(u(6), u(100))):
        state, out = on_execution(state, report, config, {})
        alerts += [a for a in out.alerts if a.rule == "turnover"]
    assert [a.severity for a in alerts] == [C]  # 500 within; 1,100 > 1,000
    state, out = on_timer(state, sim.ts + 5 * SECOND, config, {})
    assert [a.rule for a in out.alerts if a.rule == "turnover"] == []
    state, out = on_timer(state, sim.ts + 11 * SECOND, config, {})
    assert [(a.rule, a.severity) for a in out.alerts if a.rule == "turnover"] == [("turnover", CLR)]
    assert state.risk.turnover == {}


# --- properties over generated order flow -------------------------------------------------

Event = tuple[str, Any]


@st.composite
def order_flows(draw: st.DrawFn) -> list[Event]:
    """Interleaved lifecycles of a few orders, marks, and the odd invalid report."""
    sims = [
        OrderSim(
            f"o{i}",
            qty=u(draw(st.integers(1, 50))),
            side=draw(st.sampled_from(Side)),
            symbol=draw(st.sampled_from(["XYZ", "ABC"])),
            limit_price=u(draw(st.integers(90, 110))),
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    started: set[int] = set()
    done: set[int] = set()
    events: list[Event] = []
    ts = T0
    for _ in range(draw(st.integers(1, 25))):
        i = draw(st.integers(0, len(sims) - 1))
        sim = sims[i]
        sim.ts = max(sim.ts, ts)
        action = draw(st.sampled_from(["fill", "fill", "fill", "cancel", "replace", "mark", "bad"]))
        if action == "mark":
            ts += SECOND
            px = u(draw(st.integers(80, 120)))
            events.append(("mark", MarkPrice(sim.symbol, px, ts, f"t{ts}")))
        elif action == "bad":
            events.append(("report", sim.fill(u(1), u(100))._replace(cum_qty=10**15)))
            sim.cum -= u(1)
        elif i not in started:
            started.add(i)
            events.append(("report", sim.new()))
        elif i in done:
            continue
        elif action == "fill":
            open_qty = sim.qty - sim.cum
            qty = min(open_qty, u(draw(st.integers(1, 20))))
            px = u(draw(st.integers(95, 105))) + draw(st.integers(0, 99_999_999))
            events.append(("report", sim.fill(qty, px, draw(st.integers(0, 10**6)))))
            if sim.cum == sim.qty:
                done.add(i)
        elif action == "cancel":
            events.append(("report", sim.cancel()))
            done.add(i)
        else:
            events.append(("report", sim.replace(sim.cum + u(draw(st.integers(1, 30))))))
        ts = max(ts, sim.ts)
    return events


Replayed = tuple[TradingState, dict[str, MarkPrice], dict[str, RiskAlert]]


def replay(
    state: TradingState, events: list[Event], marks: dict[str, MarkPrice] | None = None
) -> Replayed:
    """Run events; marks are caller-owned state, so they are returned (and snapshotted) too.

    Alerts are collected by id. An invalid report delivered again is the same alert (same
    id); only its message may differ, when the order moved on in between.
    """
    marks = dict(marks or {})
    alerts: dict[str, RiskAlert] = {}
    for kind, event in events:
        if kind == "mark":
            if newer_mark(marks, event):
                marks[event.symbol] = event
            state, out = on_mark(state, event, CONFIG, marks)
        else:
            state, out = on_execution(state, event, CONFIG, marks)
        for alert in out.alerts:
            held = alerts.setdefault(alert.alert_id, alert)
            assert held._replace(message="") == alert._replace(message="")
            assert alert.rule == "invalid_execution" or held == alert
    return state, marks, alerts


@settings(max_examples=200, deadline=None)
@given(order_flows(), st.data())
def test_redelivered_reports_change_nothing_end_to_end(
    events: list[Event], data: st.DataObject
) -> None:
    reports = [i for i, (kind, _) in enumerate(events) if kind == "report"]
    redelivered = list(events)
    for i in data.draw(st.lists(st.sampled_from(reports), max_size=10)) if reports else []:
        original = next(k for k, e in enumerate(redelivered) if e is events[i])
        redelivered.insert(data.draw(st.integers(original + 1, len(redelivered))), events[i])
    once, _, alerts_once = replay(fresh(), events)
    twice, _, alerts_twice = replay(fresh(), redelivered)
    assert twice == once
    assert alerts_twice.keys() == alerts_once.keys()


@settings(max_examples=100, deadline=None)
@given(order_flows(), st.integers(0, 25))
def test_snapshot_and_resume_is_the_same_as_an_uninterrupted_run(
    events: list[Event], cut: int
) -> None:
    whole, _, alerts = replay(fresh(), events)
    snapshot = pickle.dumps(replay(fresh(), events[:cut])[:2])
    first, marks = pickle.loads(snapshot)
    resumed, _, alerts_after = replay(first, events[cut:], marks)
    assert resumed == whole
    assert alerts_after.items() <= alerts.items()


@settings(max_examples=100, deadline=None)
@given(order_flows())
def test_versions_only_grow_and_account_matches_its_positions(events: list[Event]) -> None:
    marks: dict[str, MarkPrice] = {}
    state = fresh()
    last_version: dict[tuple[str, str], int] = {}
    for kind, event in events:
        if kind == "mark":
            marks[event.symbol] = event
            state, out = on_mark(state, event, CONFIG, marks)
        else:
            state, out = on_execution(state, event, CONFIG, marks)
        for row in (out.order, out.position):
            if row is not None:
                key = (type(row).__name__, getattr(row, "order_id", getattr(row, "symbol", "")))
                assert row.version > last_version.get(key, 0)
                last_version[key] = row.version
        account = state.account
        assert account.realised_16 == sum(p.realised_16 for p in account.positions.values())
        assert account.commissions == sum(p.commissions for p in account.positions.values())
