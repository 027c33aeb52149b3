"""Properties of the positions engine, and a differential test against a Fraction model.

The documented rounding bound under test: the only rounding is the cost-basis share removed
by a partial close (half-even at scale 16), so at any moment the realised P&L differs from
the exact rational value by exactly the cost basis' own error, at most 0.5e-16 per partial
close since the position was last flat, and by nothing at all when flat.
"""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.fixedpoint import NOTIONAL_ONE, ONE, div_round
from tapeflow.core.models import Side
from tapeflow.core.trading.positions import (
    AccountState,
    MarkPrice,
    apply_fill,
    apply_mark,
    new_account,
)
from tests.support.trading_builders import T0, fill

Step = tuple[int, int, int]
"""(signed quantity, price, commission), scale-8 units."""

qty_st = st.one_of(
    st.integers(1, 50).map(lambda n: n * ONE),
    st.integers(1, 10**12),
)
px_st = st.one_of(st.integers(1, 2_000).map(lambda n: n * ONE // 4), st.integers(1, 10**13))
step_st = st.tuples(st.booleans(), qty_st, px_st, st.integers(-(10**6), 10**9)).map(
    lambda t: (t[1] if t[0] else -t[1], t[2], t[3])
)


def book(steps: list[Step], cash: int = 0) -> AccountState:
    account = new_account("ACC", cash)
    for i, (q, px, c) in enumerate(steps):
        side = Side.BUY if q > 0 else Side.SELL
        account, _ = apply_fill(account, fill(side, abs(q), px, c, exec_id=f"e{i}", ts=T0 + i))
    return account


class Reference:
    """Textbook average cost with exact rationals; deliberately a different formulation
    (a running average price rather than a cost basis)."""

    def __init__(self) -> None:
        self.qty = Fraction(0)
        self.avg = Fraction(0)
        self.realised = Fraction(0)
        self.cash = Fraction(0)
        self.partial_closes = 0

    def fill(self, q_units: int, px_units: int, c_units: int) -> None:
        q, p, c = Fraction(q_units, ONE), Fraction(px_units, ONE), Fraction(c_units, ONE)
        self.cash -= q * p + c
        self.realised -= c
        if self.qty == 0 or (self.qty > 0) == (q > 0):
            self.avg = (self.qty * self.avg + q * p) / (self.qty + q)
            self.qty += q
            return
        long = self.qty > 0
        closed = min(abs(q), abs(self.qty))
        self.realised += closed * (p - self.avg) if long else closed * (self.avg - p)
        if closed < abs(self.qty):
            self.partial_closes += 1
            self.qty += -closed if long else closed
        elif abs(q) > closed:
            self.qty, self.avg, self.partial_closes = self.qty + q, p, 0
        else:
            self.qty, self.avg, self.partial_closes = Fraction(0), Fraction(0), 0


def check_against_reference(steps: list[Step]) -> None:
    account = new_account("ACC")
    ref = Reference()
    for i, (q, px, c) in enumerate(steps):
        side = Side.BUY if q > 0 else Side.SELL
        account, pos = apply_fill(account, fill(side, abs(q), px, c, exec_id=f"e{i}", ts=T0))
        ref.fill(q, px, c)
        assert pos.qty == ref.qty * ONE
        assert account.cash_16 == ref.cash * NOTIONAL_ONE
        exact_basis = ref.qty * ref.avg * NOTIONAL_ONE
        realised_error = account.realised_16 - ref.realised * NOTIONAL_ONE
        assert realised_error == pos.cost_basis_16 - exact_basis
        assert abs(realised_error) <= Fraction(ref.partial_closes, 2)
        if ref.qty == 0:
            assert realised_error == 0 and pos.avg_cost is None
        else:
            assert pos.avg_cost is not None
            exact_avg = ref.avg * ONE
            assert abs(pos.avg_cost - exact_avg) <= 1
            assert abs(pos.avg_cost - exact_avg) <= Fraction(1, 2) or ref.partial_closes > 0


@settings(max_examples=400, deadline=None)
@given(st.lists(step_st, max_size=40))
def test_matches_fraction_reference(steps: list[Step]) -> None:
    check_against_reference(steps)


def test_matches_fraction_reference_on_thousands_of_seeded_sequences() -> None:
    rng = random.Random(20240611)
    for _ in range(2_000):
        steps = []
        for _ in range(rng.randint(1, 30)):
            qty = rng.choice([rng.randint(1, 20) * ONE, rng.randint(1, 10**11)])
            px = rng.choice([rng.randint(40, 160) * ONE // 2, rng.randint(10**9, 10**11)])
            steps.append((qty if rng.random() < 0.5 else -qty, px, rng.randint(0, 10**7)))
        check_against_reference(steps)


@settings(max_examples=300, deadline=None)
@given(st.lists(step_st, min_size=1, max_size=30), px_st)
def test_flat_realised_equals_sells_minus_buys_minus_commissions(
    steps: list[Step], close_px: int
) -> None:
    open_qty = sum(q for q, _, _ in steps)
    if open_qty:
        steps = [*steps, (-open_qty, close_px, 0)]
    account = book(steps)
    sells = sum(-q * px for q, px, _ in steps if q < 0)
    buys = sum(q * px for q, px, _ in steps if q > 0)
    commissions = sum(c for _, _, c in steps)
    assert account.positions["XYZ"].qty == 0
    assert account.realised_16 == sells - buys - commissions * ONE
    assert account.commissions == commissions


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(step_st, px_st.map(lambda p: ("mark", p))), max_size=40),
    st.integers(0, 10**15),
)
def test_realised_plus_unrealised_is_cash_change_plus_value(
    events: list[Step | tuple[str, int]], cash: int
) -> None:
    account = new_account("ACC", cash)
    for i, event in enumerate(events):
        if event[0] == "mark":
            account, _ = apply_mark(account, MarkPrice("XYZ", event[1], T0 + i))
        else:
            q, px, c = event  # type: ignore[misc]
            side = Side.BUY if q > 0 else Side.SELL
            account, _ = apply_fill(account, fill(side, abs(q), px, c, exec_id=str(i), ts=T0 + i))
        cash_change_16 = account.cash_16 - cash * ONE
        exact = account.realised_16 + account.unrealised_16
        assert exact == cash_change_16 + account.market_value_16
        # Scale-8 views are each rounded once, half-even: within 2 units together.
        views = account.realised_pnl + account.unrealised_pnl
        assert abs(views - (account.cash - cash + div_round(account.market_value_16, ONE))) <= 2
        assert account.peak_equity_16 >= account.equity_16
