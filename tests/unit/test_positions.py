"""Average-cost positions and account P&L on hand-worked examples."""

from __future__ import annotations

import pickle
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from tapeflow.core.fixedpoint import ONE, div_round, to_decimal
from tapeflow.core.models import Side
from tapeflow.core.trading.positions import DAY_US, MarkPrice, apply_fill, apply_mark, new_account
from tests.support.trading_builders import T0, fill, u

BUY, SELL = Side.BUY, Side.SELL


def five(units: int | None) -> Decimal:
    assert units is not None
    return to_decimal(units).quantize(Decimal("0.00001"), rounding=ROUND_HALF_EVEN)


def bp_commission(qty: int, px: int) -> int:
    """1 basis point of notional, at scale 8 (half-even)."""
    return div_round(qty * px, 10_000 * ONE)


WORKED = [
    # side, qty, price, avg cost, realised P&L  (from the brief, to 5 decimals)
    (BUY, 12, 100, "100", "-0.12"),
    (BUY, 17, 99, "99.41379", "-0.28830"),
    (SELL, 9, 101, "99.41379", "13.89666"),
    (SELL, 4, 105, "99.41379", "36.19949"),
    (BUY, 3, 103, "99.98004", "36.16859"),
]


def test_worked_example_to_five_decimals_at_every_step() -> None:
    account = new_account("ACC")
    for i, (side, qty, px, avg, realised) in enumerate(WORKED):
        f = fill(side, u(qty), u(px), bp_commission(u(qty), u(px)), exec_id=f"e{i}")
        account, position = apply_fill(account, f)
        assert five(position.avg_cost) == Decimal(avg), i
        assert five(account.realised_pnl) == Decimal(realised), i
        assert five(position.realised_pnl) == Decimal(realised), i
    assert position.qty == u(19)
    # Exact values behind the 5-decimal ones: (16 x 2883/29 + 309) / 19 and the P&L sum.
    assert position.avg_cost == u("99.98003630")
    assert account.realised_pnl == u("36.16858966")
    # Cash: -1200.12 - 1683.1683 + 908.9091 + 419.958 - 309.0309
    assert account.cash_16 == u("-1863.4521") * ONE
    assert account.commissions == u("0.4521")


def test_crossing_zero_closes_then_opens_at_the_fill_price() -> None:
    account = new_account("ACC")
    account, _ = apply_fill(account, fill(BUY, u(10), u(100), u(1)))
    account, pos = apply_fill(account, fill(SELL, u(15), u(110), u(2), ts=T0 + 1))
    assert pos.qty == -u(5)
    assert pos.avg_cost == u(110)
    assert pos.cost_basis_16 == -u(5) * u(110)
    assert account.realised_pnl == u(100) - u(3)  # 10 x (110 - 100) - commissions
    assert pos.opened_ts == T0 + 1
    account, pos = apply_fill(account, fill(BUY, u(5), u(104), ts=T0 + 2))
    assert pos.qty == 0 and pos.avg_cost is None and pos.cost_basis_16 == 0
    assert account.realised_pnl == u(97) + u(30)  # short 5 covered 6 lower
    assert pos.opened_ts is None


def test_short_partial_cover_realises_against_average_cost() -> None:
    account = new_account("ACC")
    account, _ = apply_fill(account, fill(SELL, u(3), u(50)))
    account, _ = apply_fill(account, fill(SELL, u(1), u(54)))
    account, pos = apply_fill(account, fill(BUY, u(2), u(49)))
    assert pos.qty == -u(2) and pos.avg_cost == u(51)
    assert account.realised_pnl == u(4)  # 2 x (51 - 49)


def test_cash_moves_with_every_fill() -> None:
    account = new_account("ACC", cash=u(1000))
    account, _ = apply_fill(account, fill(BUY, u(2), u(100), u("0.5")))
    assert account.cash == u(1000) - u(200) - u("0.5")
    account, _ = apply_fill(account, fill(SELL, u(2), u(90), u("0.5")))
    assert account.cash == u(1000) - u(200) + u(180) - u(1)
    assert account.realised_pnl == -u(21)


def test_negative_commission_rebate_increases_realised() -> None:
    account, _ = apply_fill(new_account("ACC"), fill(BUY, u(1), u(10), -u("0.01")))
    assert account.realised_pnl == u("0.01") and account.commissions == -u("0.01")


def test_marks_value_open_positions_and_track_peak_equity() -> None:
    account = new_account("ACC", cash=u(10_000))
    account, pos = apply_fill(account, fill(BUY, u(10), u(100)))
    assert pos.mark_px == u(100) and pos.mark_ts is None  # fill price until a market mark
    assert account.equity == u(10_000)
    account, pos2 = apply_mark(account, MarkPrice("XYZ", u(110), T0 + 10))
    assert pos2 is not None and pos2.unrealised_pnl == u(100) and pos2.version == pos.version + 1
    assert account.equity == u(10_100) and account.peak_equity == u(10_100)
    account, _ = apply_mark(account, MarkPrice("XYZ", u(95), T0 + 20))
    assert account.equity == u(9_950) and account.peak_equity == u(10_100)
    assert account.unrealised_pnl == -u(50)
    assert account.gross_exposure == u(950)


def test_older_or_repeated_marks_and_marks_for_other_symbols_change_nothing() -> None:
    account, _ = apply_fill(new_account("ACC"), fill(BUY, u(1), u(100)))
    account, _ = apply_mark(account, MarkPrice("XYZ", u(101), T0 + 10))
    for mark in (
        MarkPrice("XYZ", u(99), T0 + 9),
        MarkPrice("XYZ", u(101), T0 + 10),
        MarkPrice("OTHER", u(5), T0 + 11),
    ):
        same, pos = apply_mark(account, mark)
        assert same is account and pos is None


def test_flat_positions_do_not_track_marks() -> None:
    account, _ = apply_fill(new_account("ACC"), fill(BUY, u(1), u(100)))
    account, _ = apply_fill(account, fill(SELL, u(1), u(100), ts=T0 + 1))
    same, pos = apply_mark(account, MarkPrice("XYZ", u(150), T0 + 5))
    assert same is account and pos is None


def test_a_fill_takes_a_known_market_mark_only_when_it_is_newer() -> None:
    """The newest price by event time values the position: a market mark newer than the
    fill, else the fill itself (an older market mark never replaces a later fill)."""
    newer = MarkPrice("XYZ", u(102), T0 + 5)
    account, pos = apply_fill(new_account("ACC"), fill(BUY, u(1), u(100)), newer)
    assert (pos.mark_px, pos.mark_ts, pos.price_ts) == (u(102), T0 + 5, T0 + 5)
    assert account.unrealised_pnl == u(2)
    older = MarkPrice("XYZ", u(102), T0 - 5)
    account, pos = apply_fill(new_account("ACC"), fill(BUY, u(1), u(100)), older)
    assert (pos.mark_px, pos.mark_ts, pos.price_ts) == (u(100), None, T0)
    assert account.unrealised_pnl == 0


def test_without_a_market_mark_a_position_is_marked_at_its_last_fill() -> None:
    """Buy 100 @ 10 then 100 @ 20: valued at 20, unrealised +1,000 (not at the opening fill's
    10, which showed -1,000)."""
    account, _ = apply_fill(new_account("ACC"), fill(BUY, u(100), u(10)))
    account, pos = apply_fill(account, fill(BUY, u(100), u(20), ts=T0 + 1))
    assert (pos.mark_px, pos.price_ts, pos.mark_ts) == (u(20), T0 + 1, None)
    assert pos.unrealised_pnl == u(1_000) and account.unrealised_pnl == u(1_000)
    # A market mark older than the last fill never replaces it; a newer one does.
    same, none = apply_mark(account, MarkPrice("XYZ", u(5), T0))
    assert same is account and none is None
    account, pos2 = apply_mark(account, MarkPrice("XYZ", u(16), T0 + 2))
    assert pos2 is not None and pos2.unrealised_pnl == u(200)
    # ... and a later fill is newer than that mark again.
    account, pos3 = apply_fill(account, fill(SELL, u(50), u(18), ts=T0 + 3))
    assert (pos3.mark_px, pos3.mark_ts) == (u(18), None)


def test_daily_pnl_resets_at_the_utc_day_boundary() -> None:
    day_end = (T0 // DAY_US + 1) * DAY_US
    account = new_account("ACC", cash=u(1000))
    account, _ = apply_fill(account, fill(BUY, u(1), u(100)))
    account, _ = apply_mark(account, MarkPrice("XYZ", u(90), T0 + 1))
    assert account.daily_pnl_16 == -u(10) * ONE
    account, _ = apply_mark(account, MarkPrice("XYZ", u(80), day_end))
    # Next day starts from the equity before its first event (990), not from 1000.
    assert account.day_start_equity_16 == u(990) * ONE
    assert account.daily_pnl_16 == -u(10) * ONE


def test_versions_grow_by_one_per_change() -> None:
    account = new_account("ACC")
    versions = []
    for i in range(3):
        account, pos = apply_fill(account, fill(BUY, u(1), u(100), ts=T0 + i))
        versions.append((pos.version, account.version))
    assert versions == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("qty", [u(1), u("0.00000001"), u(123456)])
def test_account_state_pickles(qty: int) -> None:
    account, _ = apply_fill(new_account("ACC"), fill(BUY, qty, u("99.99")))
    assert pickle.loads(pickle.dumps(account)) == account
