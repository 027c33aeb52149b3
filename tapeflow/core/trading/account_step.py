"""One account's trading state and its step functions: the trading flow's whole logic.

`step(state, event) -> (state, output)` for the four inputs the trading flow has:
execution reports and cash movements (keyed by account), marks (shared by every account),
and a timer. The
flow only routes events and writes outputs; everything that decides is here, so the
stream and a batch replay of the same events produce the same states and alerts.

End-to-end idempotence lives at the order level: a report that the order state machine
calls a duplicate changes nothing downstream of it (no fill, no position change, no new
version, no alert). A report it calls invalid changes nothing either, and yields one alert.
An applied execution moves the position and cash (`positions.apply_fill`); an applied trade
bust or correction re-books them (`corrections.apply_correction`). Two facts about an
applied report are alerted on their own: a fill through the order's limit price, and a
ClOrdID another live order of the account uses (`risk.order_rules`).

Marks are read-only input (`marks`, symbol -> latest `MarkPrice`) owned by the caller, because
they are shared by every account of a shard; `newer_mark` is the rule for updating them.
They are inputs to the risk rules, so the caller snapshots them with the states: a restore
without them would judge the replayed orders against different prices.

Feed sequence gaps belong to no account: their state is `risk.FeedRiskState`, stepped by
`risk.assess_gap` / `risk.assess_feed_timer` wherever the tick filter's gaps come out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from tapeflow.core.models import CashMovement, ExecutionReport, RiskAlert
from tapeflow.core.risk.assess import (
    RiskState,
    assess_execution,
    assess_mark,
    assess_timer,
    exposure_readings_of,
    invalid_execution_alert,
)
from tapeflow.core.risk.limits import RiskLimitBook, SessionHours
from tapeflow.core.risk.order_rules import client_order_id_reused, fill_through_limit
from tapeflow.core.trading.cash import INVALID, CashOutcome, apply_cash, invalid_cash_alert
from tapeflow.core.trading.corrections import apply_correction
from tapeflow.core.trading.order_book import OrderBook, OrderRetention, apply_execution
from tapeflow.core.trading.orders import Applied, Invalid, OrderState, Outcome
from tapeflow.core.trading.positions import (
    DEFAULT_CURRENCY,
    AccountState,
    MarkPrice,
    Position,
    apply_fill,
    apply_mark,
    new_account,
)


@dataclass(frozen=True, slots=True)
class TradingConfig:
    """Read-only settings of the trading step (not part of the snapshotted state)."""

    limits: RiskLimitBook = field(default_factory=RiskLimitBook)
    sessions: Mapping[str, SessionHours] = field(default_factory=dict)
    currencies: Mapping[str, str] = field(default_factory=dict)
    """Account -> its currency, where it is not the deployment's default."""


@dataclass(frozen=True, slots=True)
class TradingState:
    account: AccountState
    orders: OrderBook
    risk: RiskState


class TradingOutput(NamedTuple):
    """What changed: each field is None (or empty) when that part did not change."""

    outcome: Outcome | None = None
    order: OrderState | None = None
    position: Position | None = None
    account: AccountState | None = None
    alerts: tuple[RiskAlert, ...] = ()


def new_trading_state(
    account_id: str, cash: int = 0, retention: OrderRetention | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> TradingState:
    return TradingState(
        account=new_account(account_id, cash, currency),
        orders=OrderBook(retention=retention or OrderRetention()),
        risk=RiskState(),
    )


def newer_mark(marks: Mapping[str, MarkPrice], mark: MarkPrice) -> bool:
    """Whether `mark` should replace the held one: later event time wins; ties keep the
    one held (so redelivery cannot flip it)."""
    held = marks.get(mark.symbol)
    return held is None or mark.ts_event > held.ts_event


def book_report(
    orders: OrderBook, account: AccountState, report: ExecutionReport,
    marks: Mapping[str, MarkPrice],
) -> tuple[OrderBook, AccountState, Outcome, Position | None]:
    """The booking of one report, without the risk rules: the order book's verdict, and for
    an applied execution, bust or correction the position and cash it moves. The trading
    step and the reconciliation's replay both book through this function."""
    orders, outcome = apply_execution(orders, report)
    if not isinstance(outcome, Applied):
        return orders, account, outcome, None
    if outcome.fill is not None:
        account, position = apply_fill(account, outcome.fill, marks.get(report.symbol))
        return orders, account, outcome, position
    if outcome.correction is not None:
        account, position = apply_correction(account, outcome.correction)
        return orders, account, outcome, position
    return orders, account, outcome, None


def on_execution(
    state: TradingState,
    report: ExecutionReport,
    config: TradingConfig,
    marks: Mapping[str, MarkPrice],
) -> tuple[TradingState, TradingOutput]:
    if report.account_id != state.account.account_id:
        reason = f"routed to account {state.account.account_id}"
        return state, TradingOutput(
            Invalid(report.order_id, report.exec_id, reason),
            alerts=(invalid_execution_alert(report, reason),),
        )
    orders, account, outcome, position = book_report(state.orders, state.account, report,
                                                     marks)
    if isinstance(outcome, Invalid):
        return state, TradingOutput(
            outcome, alerts=(invalid_execution_alert(report, outcome.reason),)
        )
    if not isinstance(outcome, Applied):
        return state, TradingOutput(outcome)
    events: list[RiskAlert] = []
    if outcome.fill is not None:
        through = fill_through_limit(outcome.order, outcome.fill)
        if through is not None:
            events.append(through)
    if outcome.client_id_clash is not None:
        events.append(client_order_id_reused(report, outcome.client_id_clash))
    risk, alerts = assess_execution(
        state.risk,
        config.limits.for_account(account.account_id),
        config.sessions,
        account=account,
        book=orders,
        order=outcome.order,
        report=report,
        fill=outcome.fill,
        marks=marks,
        corrected=outcome.correction is not None,
    )
    changed_account = account if position is not None else None
    return TradingState(account, orders, risk), TradingOutput(
        outcome, outcome.order, position, changed_account, (*events, *alerts)
    )


def on_cash(
    state: TradingState,
    movement: CashMovement,
    config: TradingConfig,
    marks: Mapping[str, MarkPrice],
) -> tuple[TradingState, TradingOutput, CashOutcome]:
    """A deposit, withdrawal or fee (`trading.cash`); equity rules run again after it."""
    account, outcome = apply_cash(state.account, movement)
    if outcome.kind == INVALID:
        return state, TradingOutput(alerts=(invalid_cash_alert(movement, outcome.reason),)), \
            outcome
    if account is state.account:
        return state, TradingOutput(), outcome
    risk, alerts = exposure_readings_of(
        state.risk, config.limits.for_account(account.account_id), account=account,
        book=state.orders, marks=marks, source=movement.movement_id, ts=movement.ts_event)
    return TradingState(account, state.orders, risk), \
        TradingOutput(account=account, alerts=alerts), outcome


def on_mark(
    state: TradingState, mark: MarkPrice, config: TradingConfig, marks: Mapping[str, MarkPrice]
) -> tuple[TradingState, TradingOutput]:
    """Revalue the account if it holds `mark.symbol`; `marks` should already include it."""
    account, position = apply_mark(state.account, mark)
    if position is None:
        return state, TradingOutput()
    risk, alerts = assess_mark(
        state.risk,
        config.limits.for_account(account.account_id),
        account=account,
        book=state.orders,
        mark=mark,
        marks=marks,
    )
    new_state = TradingState(account, state.orders, risk)
    return new_state, TradingOutput(position=position, account=account, alerts=alerts)


def on_timer(
    state: TradingState, now_us: int, config: TradingConfig, marks: Mapping[str, MarkPrice]
) -> tuple[TradingState, TradingOutput]:
    """Time-driven rules. `now_us` is the caller's clock; nothing here reads one."""
    risk, alerts = assess_timer(
        state.risk,
        config.limits.for_account(state.account.account_id),
        account=state.account,
        marks=marks,
        now_us=now_us,
    )
    return TradingState(state.account, state.orders, risk), TradingOutput(alerts=alerts)
