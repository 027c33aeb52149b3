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

from tapeflow.core.risk import assess
from tapeflow.core.risk.assess import RiskState
from tapeflow.core.risk.exposure import (
    Opening,
    build_opening,
    opening_order_notional_16,
)
from tapeflow.core.risk.feed import check_stale_marks
from tapeflow.core.risk.levels import Reading
from tapeflow.core.risk.limits import RiskLimits
from tapeflow.core.risk.rules import (
    AccountFigures,
    check_buying_power,
    check_concentration,
    check_daily_loss,
    check_drawdown,
    check_gross_exposure,
)
from tapeflow.core.trading import shard_step
from tapeflow.core.trading.order_book import OrderBook
from tapeflow.core.trading.positions import (
    AccountState,
    MarkPrice,
    recomputed_totals,
)
from tapeflow.core.trading.shard_step import (
    ShardState,
    on_report_inplace,
)
from tests.support.account_sequences import (
    CONFIG,
    SHARD,
    SYMBOLS,
    World,
    check_kept_figures,
    next_step,
    step,
)
from tests.support.trading_builders import OrderSim, u


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
