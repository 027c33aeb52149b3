"""Random sequences of trading records through the shard steps, and the check that the kept
figures equal a full recomputation (issue 12): shared by tests/unit/test_account_totals.py and
tests/unit/test_trading_resume.py.

`next_step` draws one record from the OMS side (`World`: orders per account, one clock): new
orders (limit and market), fills and partial fills, busts and corrections, cancels,
replaces, marks, cash movements, new UTC days and timer ticks; tight limits (`CONFIG`) make
every exposure rule breach, escalate and clear in short runs.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tapeflow.core.models import CashKind, CashMovement, OrderType, Side
from tapeflow.core.risk.exposure import opening_16, opening_order_notional_16
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.risk.rules import CONCENTRATION
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.positions import DAY_US, MarkPrice, recomputed_totals
from tapeflow.core.trading.shard_step import (
    ShardConfig,
    ShardOutput,
    ShardState,
    on_cash_inplace,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)
from tests.support.trading_builders import T0, OrderSim, u

ACCOUNTS = ("A1", "A2")
SYMBOLS = ("XYZ", "ABC", "QQQ")
# Tight limits, so that every exposure rule breaches, escalates and clears in short runs.
CONFIG = TradingConfig(limits=RiskLimitBook(RiskLimits(
    max_daily_loss=u(300), max_drawdown_bps=500, max_concentration_bps=4_000,
    max_gross_exposure=u(20_000), max_leverage=u(2), max_position_qty=u(150))))
SHARD = ShardConfig(initial_cash=u(10_000), snapshot_interval_us=30 * 1_000_000)


def check_kept_figures(shard: ShardState) -> None:
    holders: dict[str, set[str]] = {}
    for account_id, state in shard.accounts.items():
        account, risk = state.account, state.risk
        assert (account.market_16, account.gross_16, account.basis_16) == \
            recomputed_totals(account)
        market, _gross, basis = recomputed_totals(account)
        assert account.equity_16 == account.cash_16 + market
        assert account.unrealised_16 == market - basis
        assert account.daily_pnl_16 == account.cash_16 + market - account.day_start_equity_16
        assert account.peak_equity_16 >= account.equity_16
        if risk.opening is not None:
            assert opening_16(risk.opening, state.orders, account, shard.marks) == \
                opening_order_notional_16(state.orders, account, shard.marks)
        open_keys = [k.symbol for k in risk.levels if k.rule == CONCENTRATION]
        if risk.concentration_open is not None:
            assert list(risk.concentration_open) == \
                [s for s in account.positions if s in open_keys]
            assert risk.concentration_bound_16 is not None
            assert all(abs(p.qty * p.mark_px) <= risk.concentration_bound_16
                       for s, p in account.positions.items()
                       if s not in risk.concentration_open)
        for symbol, position in account.positions.items():
            if position.qty:
                holders.setdefault(symbol, set()).add(account_id)
    assert {s: set(a) for s, a in shard.holders.items()} == holders


class World:
    """The OMS side: orders per account and a clock shared by every record."""

    def __init__(self) -> None:
        self.now = T0
        self.orders: list[OrderSim] = []
        self.movements = 0

    def tick(self) -> int:
        self.now += 1_000_000
        return self.now

    def sim(self, data: st.DataObject, live: bool = True) -> OrderSim | None:
        choices = [o for o in self.orders if (o.leaves > 0 and o.resting is None) or not live]
        return data.draw(st.sampled_from(choices)) if choices else None


def next_step(world: World, data: st.DataObject) -> tuple[str, object]:
    """One record: ('report', ExecutionReport) | ('cash', CashMovement) | ('mark', MarkPrice)."""
    kind = data.draw(st.sampled_from(
        ("new", "new", "fill", "fill", "fill", "bust", "correct", "cancel", "replace",
         "mark", "mark", "mark", "cash", "day", "tick")))
    px = data.draw(st.integers(20, 200).map(u))
    if kind == "day":
        world.now += DAY_US
        kind = "mark"
    ts = world.tick()
    if kind == "tick":
        world.now += data.draw(st.sampled_from((0, 45, 90))) * 1_000_000
        return "tick", world.now
    if kind == "mark":
        return "mark", MarkPrice(data.draw(st.sampled_from(SYMBOLS)), px, ts, f"m{ts}")
    if kind == "cash":
        world.movements += 1
        cash_kind = data.draw(st.sampled_from(tuple(CashKind)))
        return "cash", CashMovement(f"c{world.movements}", data.draw(st.sampled_from(ACCOUNTS)),
                                    cash_kind, u(data.draw(st.integers(1, 3_000))), "USD", ts,
                                    None)
    sim = world.sim(data, live=kind not in ("bust", "correct"))
    if kind == "new" or sim is None:
        market = data.draw(st.booleans())
        sim = OrderSim(f"O{len(world.orders)}", u(data.draw(st.integers(1, 120))),
                       side=data.draw(st.sampled_from((Side.BUY, Side.SELL))),
                       account_id=data.draw(st.sampled_from(ACCOUNTS)),
                       symbol=data.draw(st.sampled_from(SYMBOLS)),
                       order_type=OrderType.MARKET if market else OrderType.LIMIT,
                       limit_price=None if market else px)
        world.orders.append(sim)
        sim.ts = ts
        return "report", sim.new()
    sim.ts = ts
    if kind == "fill":
        qty = data.draw(st.integers(1, max(1, sim.leaves // 10**8)).map(u))
        return "report", sim.trade(min(qty, sim.leaves), px, u(1))
    if kind in ("bust", "correct") and sim.executions:
        ref = data.draw(st.sampled_from(sorted(sim.executions)))
        if kind == "bust":
            return "report", sim.trade_cancel(ref)
        qty = min(sim.executions[ref], sim.qty - sim.cum + sim.executions[ref])
        return "report", sim.trade_correct(ref, max(qty, 1), px, u(2))
    if kind == "replace" and sim.leaves > 0 and sim.resting is None:
        return "report", sim.replace(sim.cum + sim.leaves + u(5), sim.limit_price and px)
    if sim.leaves > 0 and sim.resting is None:
        return "report", sim.cancel()
    return "mark", MarkPrice(sim.symbol, px, ts, f"m{ts}")


def step(shard: ShardState, kind: str, record: object) -> list[ShardOutput]:
    if kind == "report":
        return on_report_inplace(shard, record, CONFIG, SHARD)  # type: ignore[arg-type]
    if kind == "cash":
        return on_cash_inplace(shard, record, CONFIG, SHARD)  # type: ignore[arg-type]
    if kind == "tick":
        return on_tick_inplace(shard, record, CONFIG, SHARD)  # type: ignore[arg-type]
    return on_market_inplace(shard, record, CONFIG, SHARD)  # type: ignore[arg-type]


