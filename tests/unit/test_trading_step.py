"""The trading flow's shard: accounts of one partition, its marks table, snapshots, timer."""

from __future__ import annotations

import pickle

from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.positions import MarkPrice
from tapeflow.core.trading.shard_step import (
    ExecutionResult,
    PnlSnapshot,
    ShardConfig,
    ShardState,
    StateChange,
    is_redelivery,
    on_finish_inplace,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)
from tests.support.trading_builders import T0, OrderSim, u

SECOND = 1_000_000
CONFIG = TradingConfig()
SHARD = ShardConfig(initial_cash=u(1_000_000), snapshot_interval_us=10 * SECOND)


def _snaps(out: list[object]) -> list[PnlSnapshot]:
    return [x for x in out if isinstance(x, PnlSnapshot)]


def test_reports_open_accounts_with_initial_cash_and_fill_them() -> None:
    shard = ShardState()
    a, b = OrderSim("a", qty=u(10)), OrderSim("b", qty=u(5), account_id="ACC2")
    for report in (a.new(), b.new(), a.fill(u(10), u(100))):
        (result,) = on_report_inplace(shard, report, CONFIG, SHARD)
        assert isinstance(result, ExecutionResult) and result.report == report
    assert set(shard.accounts) == {"ACC", "ACC2"}
    assert shard.accounts["ACC"].account.cash == u(1_000_000) - u(1_000)
    assert shard.accounts["ACC2"].account.cash == u(1_000_000)
    assert shard.clock_us == a.ts


def test_a_newer_mark_revalues_holders_only_and_an_older_one_changes_nothing() -> None:
    shard = ShardState()
    a = OrderSim("a", qty=u(10))
    other = OrderSim("o", qty=u(1), account_id="FLAT", symbol="ABC")
    for report in (a.new(), a.fill(u(10), u(100)), other.new()):
        on_report_inplace(shard, report, CONFIG, SHARD)
    (change,) = on_market_inplace(shard, MarkPrice("XYZ", u(110), T0 + SECOND, "m1"), CONFIG, SHARD)
    assert isinstance(change, StateChange) and change.output.position is not None
    assert shard.accounts["ACC"].account.unrealised_pnl == u(100)
    assert shard.marks["XYZ"].source_id == "m1"
    assert on_market_inplace(shard, MarkPrice("XYZ", u(90), T0, "m0"), CONFIG, SHARD) == []
    assert shard.marks["XYZ"].source_id == "m1"
    # A mark for a symbol nobody holds is kept for later fills, and revalues nothing.
    assert on_market_inplace(shard, MarkPrice("ABC", u(7), T0 + SECOND, "m2"), CONFIG, SHARD) == []
    assert shard.marks["ABC"].price == u(7)


def test_the_timer_raises_stale_market_data_at_the_event_clock() -> None:
    limits = RiskLimitBook(RiskLimits(max_mark_age_us=60 * SECOND))
    config = TradingConfig(limits=limits)
    shard = ShardState()
    a = OrderSim("a", qty=u(10))
    on_report_inplace(shard, a.new(), config, SHARD)
    on_report_inplace(shard, a.fill(u(10), u(100)), config, SHARD)
    on_market_inplace(shard, MarkPrice("XYZ", u(101), a.ts, "m1"), config, SHARD)
    assert not [x for x in on_tick_inplace(shard, a.ts + 30 * SECOND, config, SHARD)
                if isinstance(x, StateChange)]
    # Another symbol's mark moves the shard's clock; the held symbol's mark is now old.
    on_market_inplace(shard, MarkPrice("ABC", u(5), a.ts + 61 * SECOND, "m2"), config, SHARD)
    out = on_tick_inplace(shard, shard.clock_us, config, SHARD)
    alerts = [al for x in out if isinstance(x, StateChange) for al in x.output.alerts]
    assert [(al.rule, al.symbol, al.source_event_id) for al in alerts] == [
        ("stale_market_data", "XYZ", "m1")]
    # Edge-triggered: the next tick does not repeat it.
    assert not [x for x in on_tick_inplace(shard, shard.clock_us, config, SHARD)
                if isinstance(x, StateChange)]


def test_snapshots_are_a_time_series_cut_by_reports_and_marks() -> None:
    """10 s buckets. A mark in a later bucket closes the open one (emitted as it was before
    the mark); a report older than a bucket a mark opened is booked in its own bucket, which
    is re-emitted at once; the end of input emits the open bucket provisionally."""
    shard = ShardState()
    a = OrderSim("a", qty=u(10))
    on_report_inplace(shard, a.new(), CONFIG, SHARD)
    on_report_inplace(shard, a.fill(u(4), u(100)), CONFIG, SHARD)
    cash_0 = shard.accounts["ACC"].account.cash
    b0, b2, b3 = (T0 + 10 * SECOND, T0 + 30 * SECOND, T0 + 40 * SECOND)  # bucket ends
    out = on_market_inplace(shard, MarkPrice("XYZ", u(101), T0 + 35 * SECOND, "m"), CONFIG,
                            SHARD)
    snaps = _snaps(out)
    assert [(s.symbol, s.ts) for s in snaps] == [("", b0), ("XYZ", b0)]
    assert snaps[0].cash == cash_0 and snaps[1].qty == u(4) and snaps[1].mark == u(100)
    a.ts = T0 + 25 * SECOND
    out = on_report_inplace(shard, a.fill(u(6), u(100)), CONFIG, SHARD)
    snaps = _snaps(out)
    assert [(s.symbol, s.ts) for s in snaps] == [("", b2), ("XYZ", b2)]
    assert snaps[1].qty == u(10) and snaps[0].cash == cash_0 - u(600)
    assert isinstance(out[-1], ExecutionResult)
    final = _snaps(on_finish_inplace(shard, SHARD))
    assert [s.ts for s in final] == [b3] * 2
    assert final[0].version == shard.accounts["ACC"].account.version
    assert final[1].qty == u(10) and final[1].equity == u(1010) and final[1].mark == u(101)
    assert final[0].equity == final[0].cash + final[1].equity
    assert on_finish_inplace(shard, SHARD) == []  # nothing changed since
    assert _snaps(on_tick_inplace(shard, shard.clock_us, CONFIG, SHARD)) == []


def test_a_held_position_gets_a_row_for_each_bucket_marks_moved_it() -> None:
    """Buy 100 @ 10 at 00:00:30; marks 10 at 00:00:50, 13 at 00:01:30, 12 at 00:02:10 (one
    minute buckets): one row per bucket, each stamped with its end and valued at that
    bucket's mark (not the last report's bucket showing a later price)."""
    minute = 60 * SECOND
    shard = ShardState()
    config = ShardConfig(initial_cash=u(10_000), snapshot_interval_us=minute)
    start = (T0 // minute) * minute
    a = OrderSim("a", qty=u(100), limit_price=u(10), ts=start + 30 * SECOND - 2_000)
    on_report_inplace(shard, a.new(), CONFIG, config)
    on_report_inplace(shard, a.fill(u(100), u(10)), CONFIG, config)
    rows: list[PnlSnapshot] = []
    for at_s, px in ((50, 10), (90, 13), (130, 12)):
        mark = MarkPrice("XYZ", u(px), start + at_s * SECOND, f"m{at_s}")
        rows += _snaps(on_market_inplace(shard, mark, CONFIG, config))
    rows += _snaps(on_finish_inplace(shard, config))
    held = [(r.ts - start, r.mark, r.unrealised_pnl) for r in rows if r.symbol == "XYZ"]
    assert held == [(minute, u(10), 0), (2 * minute, u(13), u(300)),
                    (3 * minute, u(12), u(200))]


def test_a_resent_report_is_a_redelivery_and_a_stale_cum_qty_is_not() -> None:
    shard = ShardState()
    a = OrderSim("a", qty=u(10))
    on_report_inplace(shard, a.new(), CONFIG, SHARD)
    fill = a.fill(u(4), u(100))
    (first,) = on_report_inplace(shard, fill, CONFIG, SHARD)
    (again,) = on_report_inplace(shard, fill, CONFIG, SHARD)
    (stale,) = on_report_inplace(shard, fill._replace(exec_id="other"), CONFIG, SHARD)
    assert isinstance(first, ExecutionResult) and not is_redelivery(first)
    assert isinstance(again, ExecutionResult) and is_redelivery(again)
    assert isinstance(stale, ExecutionResult) and not is_redelivery(stale)
    assert again.output.order is None and stale.output.order is None


def test_the_shard_pickles_whole() -> None:
    shard = ShardState()
    a = OrderSim("a", qty=u(10))
    on_report_inplace(shard, a.new(), CONFIG, SHARD)
    on_report_inplace(shard, a.fill(u(10), u(100)), CONFIG, SHARD)
    on_market_inplace(shard, MarkPrice("XYZ", u(101), a.ts, "m"), CONFIG, SHARD)
    copy = pickle.loads(pickle.dumps(shard))
    assert copy.accounts["ACC"].account == shard.accounts["ACC"].account
    assert copy.marks == shard.marks and copy.open_bucket == shard.open_bucket
