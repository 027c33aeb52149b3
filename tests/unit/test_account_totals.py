"""The running account figures equal a full recomputation after every step (issue 12).

Equity, gross exposure and unrealised P&L are running totals on the account
(`AccountState.market_16`, `gross_16`, `basis_16`), the opening-order notional is kept per
symbol (`RiskState.opening`), concentration is read only where a breach is possible
(`RiskState.concentration_bound_16` / `concentration_open`) and a mark revalues the holders
indexed by symbol (`ShardState.holders`). The references below walk every position and
every live order, as the core did before, and the property drives random sequences of
orders, fills, partial fills, busts, corrections, cancels, replaces, market orders, marks,
cash movements, new UTC days and timer ticks (stale marks) through the shard steps.

Two checks after every step: the kept figures equal the recomputed ones, and the outputs
(positions, accounts, alerts, their order) equal those of the same step with the full
recomputation patched in for the incremental rules (the reference implementation of
`risk.assess._exposure_readings` and the scan of every account per mark).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.models import CashKind, CashMovement, OrderType, Side
from tapeflow.core.risk import assess
from tapeflow.core.risk.assess import RiskState
from tapeflow.core.risk.exposure import (
    Opening,
    build_opening,
    opening_16,
    opening_order_notional_16,
)
from tapeflow.core.risk.feed import check_stale_marks
from tapeflow.core.risk.levels import Reading
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.risk.rules import (
    CONCENTRATION,
    AccountFigures,
    check_buying_power,
    check_concentration,
    check_daily_loss,
    check_drawdown,
    check_gross_exposure,
)
from tapeflow.core.trading import shard_step
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.order_book import OrderBook
from tapeflow.core.trading.positions import (
    DAY_US,
    AccountState,
    MarkPrice,
    recomputed_totals,
)
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


def _figures(account: AccountState) -> AccountFigures:
    market, gross, _basis = recomputed_totals(account)
    return AccountFigures(account.cash_16 + market, gross)


def reference_exposure_readings(
    limits: RiskLimits, account: AccountState, risk: RiskState, book: OrderBook, *,
    marks: Mapping[str, MarkPrice], source: str, changed: str | None,
) -> tuple[list[Reading], RiskState]:
    """The rules as written: every position's value summed, every live order walked, every
    position's concentration read (the core before issue 12 phase 2)."""
    figures = _figures(account)
    out = [
        *check_daily_loss(limits, account, source, figures),
        *check_drawdown(limits, account, source, figures),
        *check_gross_exposure(limits, account, source, figures),
        *check_buying_power(limits, account, opening_order_notional_16(book, account, marks),
                            source, figures),
    ]
    for symbol in account.positions:
        out.extend(check_concentration(limits, account, symbol, source, figures.equity_16))
    return out, risk


def _reference_refresh(opening: object, book: OrderBook, account: AccountState,
                       marks: Mapping[str, MarkPrice], symbols: object) -> Opening:
    return build_opening(book, account, marks)


def _reference_stale(limits: RiskLimits, account: AccountState, risk: RiskState,
                     mark: MarkPrice) -> list[Reading]:
    return check_stale_marks(limits, account, {mark.symbol: mark}, mark.ts_event,
                             [mark.symbol])


@contextmanager
def full_recomputation(shard: ShardState) -> Iterator[None]:
    """The reference: no kept figure is read, every account is offered every mark."""
    every = {s: dict.fromkeys(shard.accounts) for s in SYMBOLS}
    with mock.patch.object(assess, "_exposure_readings", reference_exposure_readings), \
            mock.patch.object(assess, "refresh_opening", _reference_refresh), \
            mock.patch.object(assess, "_stale_after_mark", _reference_stale), \
            mock.patch.object(shard, "holders", every):
        yield


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


def _copy(shard: ShardState) -> ShardState:
    """A shard to step independently (its dicts copied; the states in them are immutable)."""
    return ShardState(dict(shard.accounts), dict(shard.marks), shard.clock_us,
                      dict(shard.open_bucket), dict(shard.snapshot_version),
                      dict(shard.report_bucket), dict(shard.snapshot_bucket),
                      {s: dict(a) for s, a in shard.holders.items()})


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_kept_figures_equal_a_full_recomputation_after_every_step(data: st.DataObject) -> None:
    world, shard = World(), ShardState()
    for _ in range(data.draw(st.integers(5, 60))):
        kind, record = next_step(world, data)
        reference = _copy(shard)
        with full_recomputation(reference):
            want = step(reference, kind, record)
        got = step(shard, kind, record)
        assert got == want
        check_kept_figures(shard)


def test_the_reference_is_exercised_by_breaches() -> None:
    """The tight limits make the exposure rules alert (so the differential check compares
    alerts, not only quiet readings): a concentrated position in a small account."""
    shard = ShardState()
    sim = OrderSim("O1", u(170), account_id="A1", symbol="XYZ", limit_price=u(100))
    out = on_report_inplace(shard, sim.new(), CONFIG, SHARD)
    out += on_report_inplace(shard, sim.trade(u(160), u(100), u(1)), CONFIG, SHARD)
    rules = {a.rule for o in out if hasattr(o, "output") for a in o.output.alerts}
    assert {"concentration", "buying_power", "position_limit"} <= rules
    check_kept_figures(shard)
    shard_step.on_market_inplace(shard, MarkPrice("XYZ", u(95), sim.ts + 1, "m"), CONFIG, SHARD)
    check_kept_figures(shard)
