"""Trade busts and corrections on positions (FIX Trade Cancel / Trade Correct), against the
same fills booked as if the execution had never happened, or had happened as corrected.

Differential: `apply_correction` re-books from the position's journal; the reference books
the changed sequence from nothing with `apply_fill` (and a Fraction model for cash and
quantity). Within the journal every figure is equal; beyond it (an execution older than the
journal) quantity, cash, commissions and total P&L are still equal.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import Side
from tapeflow.core.trading import corrections, positions
from tapeflow.core.trading.corrections import apply_correction
from tapeflow.core.trading.orders import Correction, Fill, TradeRecord
from tapeflow.core.trading.positions import AccountState, apply_fill, new_account
from tests.support.trading_builders import T0, fill, u

Step = tuple[int, int, int]
"""(signed quantity, price, commission), scale-8 units."""

step_st = st.tuples(st.booleans(), st.integers(1, 40).map(lambda n: n * ONE),
                    st.integers(1, 400).map(lambda n: n * ONE // 4), st.integers(0, 10**8)
                    ).map(lambda t: (t[1] if t[0] else -t[1], t[2], t[3]))


def _fill(i: int, step: Step, exec_id: str | None = None) -> Fill:
    q, px, c = step
    return fill(Side.BUY if q > 0 else Side.SELL, abs(q), px, c, exec_id=exec_id or f"e{i}",
                ts=T0 + i)


def book(steps: list[Step | None]) -> AccountState:
    """The fills booked one by one (None: an execution that never happened)."""
    account = new_account("ACC", u(1_000_000))
    for i, step in enumerate(steps):
        if step is not None:
            account, _ = apply_fill(account, _fill(i, step))
    return account


def correct(account: AccountState, steps: list[Step], k: int, new: Step | None,
            at: int) -> AccountState:
    q, px, c = steps[k]
    side = Side.BUY if q > 0 else Side.SELL
    replacement = None
    if new is not None:
        replacement = _fill(k, new, exec_id=f"fix{k}")._replace(ts_event=T0 + at)
        assert replacement.side == side
    corr = Correction(f"fix{k}", f"e{k}", "ACC", "XYZ", side,
                      TradeRecord(f"e{k}", abs(q), px, c, T0 + k), replacement, T0 + at)
    account, _ = apply_correction(account, corr)
    return account


def figures(account: AccountState) -> tuple[int, ...]:
    p = account.positions["XYZ"]
    return (p.qty, p.cost_basis_16, p.realised_16, p.commissions, p.opened_ts or 0,
            account.cash_16, account.realised_16, account.commissions)


def total_pnl(account: AccountState, mark: int) -> int:
    """Realised + unrealised at `mark` (scale 16): what the cash and the position decide."""
    p = account.positions["XYZ"]
    return p.realised_16 + p.qty * mark - p.cost_basis_16


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, min_size=1, max_size=12), st.data())
def test_a_bust_rebooks_as_if_the_execution_never_happened(steps: list[Step],
                                                          data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(steps) - 1))
    busted = correct(book(list(steps)), steps, k, None, len(steps))
    never = book([s if i != k else None for i, s in enumerate(steps)])
    if "XYZ" not in never.positions:  # the only fill was busted: a flat, empty position
        assert figures(busted)[:4] == (0, 0, 0, 0) and busted.cash_16 == never.cash_16
        return
    assert figures(busted) == figures(never)
    # The reference model agrees on cash: the busted trade's money is back.
    cash = Fraction(1_000_000) - sum(Fraction(q * px + c * ONE, ONE * ONE)
                                     for i, (q, px, c) in enumerate(steps) if i != k)
    assert Fraction(busted.cash_16, ONE * ONE) == cash


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, min_size=1, max_size=12), st.data())
def test_a_correction_rebooks_as_if_the_execution_had_been_so(steps: list[Step],
                                                             data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(steps) - 1))
    q, _, _ = steps[k]
    new_q = data.draw(st.integers(1, 40)) * ONE * (1 if q > 0 else -1)
    new = (new_q, data.draw(st.integers(1, 400)) * ONE // 4, data.draw(st.integers(0, 10**8)))
    corrected = correct(book(list(steps)), steps, k, new, len(steps))
    assert figures(corrected) == figures(book([*steps[:k], new, *steps[k + 1:]]))


@settings(max_examples=200, deadline=None)
@given(st.lists(step_st, min_size=3, max_size=12), st.data())
def test_beyond_the_journal_quantity_cash_and_total_pnl_stay_exact(
        steps: list[Step], data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(steps) - 3))
    mark = data.draw(st.integers(1, 400)) * ONE // 4
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(positions, "JOURNAL_SIZE", 2)
        mp.setattr(corrections, "JOURNAL_SIZE", 2)
        busted = correct(book(list(steps)), steps, k, None, len(steps))
    assert all(e.exec_id != f"e{k}" for e in busted.positions["XYZ"].journal)
    never = book([s if i != k else None for i, s in enumerate(steps)])
    got, want = figures(busted), figures(never)
    assert (got[0], got[3], got[5], got[7]) == (want[0], want[3], want[5], want[7])
    assert total_pnl(busted, mark) == total_pnl(never, mark)
    assert busted.realised_16 == busted.positions["XYZ"].realised_16


def test_a_closing_trade_busted_takes_its_realised_pnl_back() -> None:
    """Long 100 @ 10, sell 50 @ 12 (realised +100), bust the sell: long 100 @ 10, realised
    0, as if the sell never happened (a reversal at 12 would have kept the +100 and an
    average cost of 11)."""
    steps: list[Step] = [(u(100), u(10), 0), (-u(50), u(12), 0)]
    account = correct(book(list(steps)), steps, 1, None, 5)
    p = account.positions["XYZ"]
    assert (p.qty, p.avg_cost, p.realised_pnl) == (u(100), u(10), 0)
    assert account.cash == u(1_000_000) - u(1_000)
