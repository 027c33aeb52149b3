"""The reconciliation's pure part (tapeflow.core.trading.reconcile): replay, comparison, alerts.

- Differential: replaying a generated order flow (duplicates, re-sent and invalid reports
  included) gives the same positions and cash as the trading core's own step
  (`trading.on_execution`) folded in arrival order, which is what the flow runs; and the
  replay does not depend on the order the audit trail is read in.
- Comparison table: equal, one field off, a row missing on either side, skipped keys.
- Alerts: one per break, deterministic ids that change when the break changes.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import ExecutionReport, Severity
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingState,
    new_trading_state,
    on_execution,
)
from tapeflow.core.trading.reconcile import (
    ACCOUNT_LEVEL,
    RULE,
    Break,
    Expected,
    break_alert,
    compare,
    cutoff_us,
    expected_at,
    expected_values,
    replay,
    run_id,
)

CASH = 1_000_000 * ONE
SPEC = MarketSpec(seed=5, n_symbols=4, n_accounts=3, duration_s=120.0, order_rate=8.0,
                  fault_rate=0.03)


def _reports() -> list[ExecutionReport]:
    market = generate_market(SPEC)
    return [r for _topic, _key, r in market.stream() if isinstance(r, ExecutionReport)]


def test_replay_equals_the_flow_core_in_arrival_order() -> None:
    reports = _reports()
    assert len({r.exec_id for r in reports}) < len(reports), "re-sent reports are included"
    states: dict[str, TradingState] = {}
    for report in reports:
        state = states.get(report.account_id) or new_trading_state(report.account_id, CASH)
        states[report.account_id], _ = on_execution(state, report, TradingConfig(), {})
    want = expected_values({a: s.account for a, s in states.items()})
    got = expected_values(replay(reports, initial_cash=CASH))
    assert got == want
    closed = [v for k, v in want.items() if k[1] != ACCOUNT_LEVEL and v["realised_pnl"]]
    assert closed, "the flow realises P&L somewhere, so the replay order is exercised"
    # The audit trail holds each exec_id once and comes back in any order.
    once = list({r.exec_id: r for r in reversed(reports)}.values())
    random.Random(1).shuffle(once)
    assert expected_values(replay(once, initial_cash=CASH)) == want


def test_cutoff_splits_and_skips_later_fills() -> None:
    reports = _reports()
    middle = sorted(r.ts_event for r in reports)[len(reports) // 2]
    exp = expected_at(reports, middle, initial_cash=CASH)
    assert exp.reports == sum(r.ts_event < middle for r in reports)
    assert exp.values == expected_values(
        replay([r for r in reports if r.ts_event < middle], initial_cash=CASH))
    later = {(r.account_id, r.symbol) for r in reports if r.ts_event >= middle and r.last_qty}
    assert later and later <= exp.skipped
    assert {(a, ACCOUNT_LEVEL) for a, _ in later} <= exp.skipped


def test_cutoff_is_next_utc_midnight() -> None:
    assert cutoff_us(date(1970, 1, 1)) == 86_400 * 1_000_000
    assert cutoff_us(date(2026, 1, 5)) == 1_767_657_600_000_000


POS = {"qty": 10 * ONE, "avg_px": 100 * ONE, "realised_pnl": 0, "commissions": ONE}
ACC = {"cash": CASH, "realised_pnl": 0, "commissions": ONE}


@pytest.mark.parametrize(("actual", "skipped", "breaks"), [
    ({("A", "X"): POS, ("A", ""): ACC}, frozenset(), []),
    ({("A", "X"): {**POS, "qty": 11 * ONE}, ("A", ""): ACC}, frozenset(),
     [Break("A", "X", "qty", 10 * ONE, 11 * ONE)]),
    ({("A", "X"): POS, ("A", ""): {**ACC, "cash": 0}}, frozenset(),
     [Break("A", "", "cash", CASH, 0)]),
    ({("A", ""): ACC}, frozenset(),
     [Break("A", "X", f, v, None) for f, v in POS.items()]),
    ({("A", "X"): POS, ("A", ""): ACC, ("B", "Y"): POS}, frozenset(),
     [Break("B", "Y", f, None, v) for f, v in POS.items()]),
    ({("A", "X"): {**POS, "qty": 0}, ("A", ""): {**ACC, "cash": 0}},
     frozenset({("A", "X"), ("A", "")}), []),
])
def test_compare_table(actual: dict[tuple[str, str], dict[str, int]],
                       skipped: frozenset[tuple[str, str]], breaks: list[Break]) -> None:
    expected = Expected({("A", "X"): POS, ("A", ""): ACC}, skipped, 3)
    got, compared = compare(expected, actual)
    assert got == breaks
    assert compared == len((set(expected.values) | set(actual)) - skipped)


def test_break_alerts_are_deterministic() -> None:
    day = date(2026, 1, 5)
    brk = Break("A", "X", "qty", 10 * ONE, 11 * ONE)
    alert = break_alert(brk, day)
    assert alert == break_alert(brk, day)
    assert (alert.rule, alert.severity, alert.account_id, alert.symbol) == (
        RULE, Severity.CRITICAL, "A", "X")
    assert (alert.limit, alert.observed) == (10 * ONE, 11 * ONE)
    assert alert.ts_event == cutoff_us(day) - 1
    assert "expected 10.00000000, store has 11.00000000" in alert.message
    assert break_alert(brk._replace(actual=12 * ONE), day).alert_id != alert.alert_id
    assert break_alert(brk, date(2026, 1, 6)).alert_id != alert.alert_id
    account = break_alert(Break("A", "", "cash", CASH, None), day)
    assert account.symbol is None and account.observed is None and "missing" in account.message
    assert run_id(day, [brk], 2, 9) == run_id(day, [brk], 2, 9)
    assert run_id(day, [brk], 2, 9) != run_id(day, [], 2, 9)
