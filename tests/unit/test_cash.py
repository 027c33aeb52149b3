"""Cash movements (deposits, withdrawals, fees) and account currency, through the account
and shard steps."""

from __future__ import annotations

from dataclasses import replace

from tapeflow.core.models import CashKind, CashMovement, Severity
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import TradingConfig, new_trading_state, on_cash
from tapeflow.core.trading.cash import APPLIED, DUPLICATE, INVALID
from tapeflow.core.trading.shard_step import (
    CashResult,
    ShardConfig,
    ShardState,
    on_cash_inplace,
    on_report_inplace,
)
from tests.support.trading_builders import T0, OrderSim, u

CONFIG = TradingConfig(limits=RiskLimitBook(RiskLimits(max_daily_loss=u(1_000),
                                                       max_drawdown_bps=1_000)))


def move(mid: str, kind: CashKind, amount: str, currency: str = "USD", ts: int = T0
         ) -> CashMovement:
    return CashMovement(mid, "ACC", kind, u(amount), currency, ts, None)


def test_deposits_withdrawals_and_fees_move_cash_exactly() -> None:
    state = new_trading_state("ACC", 0)
    for movement, cash in ((move("d1", CashKind.DEPOSIT, "10000.5"), "10000.5"),
                           (move("w1", CashKind.WITHDRAWAL, "2500.25"), "7500.25"),
                           (move("f1", CashKind.FEE, "0.25"), "7500")):
        state, out, outcome = on_cash(state, movement, CONFIG, {})
        assert outcome.kind == APPLIED and out.account is state.account
        assert state.account.cash == u(cash)
    account = state.account
    assert (account.net_deposits, account.fees, account.version) == (u("7500.25"), u("0.25"), 3)


def test_capital_flows_are_no_loss_but_fees_are() -> None:
    """A withdrawal of 5,000 must not read as a 5,000 daily loss (limit 1,000) or a
    drawdown; a fee of 1,200 is a loss."""
    state = new_trading_state("ACC", u(10_000))
    state, out, _ = on_cash(state, move("w", CashKind.WITHDRAWAL, "5000"), CONFIG, {})
    assert out.alerts == () and state.account.cash == u(5_000)
    state, out, _ = on_cash(state, move("f", CashKind.FEE, "1200", ts=T0 + 1), CONFIG, {})
    rules = {(a.rule, a.severity) for a in out.alerts}
    assert ("daily_loss", Severity.CRITICAL) in rules and ("drawdown", Severity.CRITICAL) in rules


def test_a_movement_in_another_currency_is_refused_and_alerted_and_a_repeat_is_a_duplicate(
) -> None:
    state = new_trading_state("ACC", 0, currency="EUR")
    same, out, outcome = on_cash(state, move("d", CashKind.DEPOSIT, "100"), CONFIG, {})
    assert same is state and outcome.kind == INVALID and "not the account's EUR" in outcome.reason
    (alert,) = out.alerts
    assert (alert.rule, alert.severity, alert.source_event_id) == (
        "invalid_cash_movement", Severity.CRITICAL, "d")
    state, _, outcome = on_cash(state, move("d2", CashKind.DEPOSIT, "100", "EUR"), CONFIG, {})
    assert outcome.kind == APPLIED
    again, out, outcome = on_cash(state, move("d2", CashKind.DEPOSIT, "100", "EUR"), CONFIG, {})
    assert again is state and outcome.kind == DUPLICATE and out.alerts == ()
    _, _, outcome = on_cash(state, move("z", CashKind.FEE, "0", "EUR"), CONFIG, {})
    assert outcome.kind == INVALID and "not positive" in outcome.reason


def test_the_shard_opens_accounts_in_their_configured_currency() -> None:
    shard = ShardState()
    trading = replace(CONFIG, currencies={"ACC": "GBP"})
    config = ShardConfig(initial_cash=0, currency="USD")
    (result,) = on_cash_inplace(shard, move("d", CashKind.DEPOSIT, "50", "GBP"), trading, config)
    assert isinstance(result, CashResult) and result.outcome.kind == APPLIED
    on_report_inplace(shard, OrderSim("o", qty=u(1), account_id="OTHER").new(), trading, config)
    assert shard.accounts["ACC"].account.currency == "GBP"
    assert shard.accounts["OTHER"].account.currency == "USD"
    assert shard.accounts["ACC"].account.cash == u(50)
