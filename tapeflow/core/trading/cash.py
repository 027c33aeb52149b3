"""Cash movements that are not trades: deposits, withdrawals and fees, in the account's
currency (docs/trading-core.md, "Accounts, currency and cash").

Why these rules:

* An account holds one currency (`AccountState.currency`, from the trading configuration
  when the account is first seen). A movement in another currency is refused, not
  converted: converting needs a rate and a time, which are not Tapeflow's to choose; the
  refusal is an alert and an audit row, and the operator books the converted amount.
* Deposits and withdrawals are capital, not P&L: they move cash and equity and also the
  day's starting equity and the peak equity by the same amount, so the daily-loss and
  drawdown rules do not read a withdrawal as a loss (or a deposit as a gain). Fees are P&L:
  they move cash and equity only (`AccountState.fees` counts them).
* `movement_id` identifies a movement: a redelivered one is a duplicate and changes
  nothing (the last `MAX_MOVEMENT_IDS` ids are remembered per account).
* `amount` must be positive; the kind gives the direction.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from tapeflow.core.fixedpoint import ONE, fmt
from tapeflow.core.models import CashKind, CashMovement, RiskAlert, Severity, Unit
from tapeflow.core.risk.levels import AlertKey, alert_id
from tapeflow.core.trading.positions import AccountState, roll_day

MAX_MOVEMENT_IDS = 1024
INVALID_CASH_MOVEMENT = "invalid_cash_movement"
APPLIED, DUPLICATE, INVALID = "applied", "duplicate", "invalid"


class CashOutcome(NamedTuple):
    """What the core made of a movement: applied, duplicate or invalid, and why."""

    kind: str
    reason: str = ""


def signed_amount(movement: CashMovement) -> int:
    return movement.amount if movement.kind == CashKind.DEPOSIT else -movement.amount


def apply_cash(account: AccountState, movement: CashMovement
               ) -> tuple[AccountState, CashOutcome]:
    """Book one movement on its account; duplicates and refused ones change nothing."""
    if movement.account_id != account.account_id:
        return account, CashOutcome(INVALID, f"routed to account {account.account_id}")
    if movement.movement_id in account.movement_ids:
        return account, CashOutcome(DUPLICATE, "movement_id already applied")
    if movement.amount <= 0:
        return account, CashOutcome(INVALID, f"amount {fmt(movement.amount)} is not positive")
    if movement.currency != account.currency:
        return account, CashOutcome(
            INVALID, f"currency {movement.currency} is not the account's {account.currency} "
            "(no conversion: book the converted amount)")
    account = roll_day(account, movement.ts_event)
    delta_16 = signed_amount(movement) * ONE
    capital = movement.kind != CashKind.FEE
    account = replace(
        account,
        cash_16=account.cash_16 + delta_16,
        net_deposits=account.net_deposits + (signed_amount(movement) if capital else 0),
        fees=account.fees + (0 if capital else movement.amount),
        day_start_equity_16=account.day_start_equity_16 + (delta_16 if capital else 0),
        peak_equity_16=account.peak_equity_16 + (delta_16 if capital else 0),
        movement_ids=(*account.movement_ids, movement.movement_id)[-MAX_MOVEMENT_IDS:],
        ts_last=max(account.ts_last, movement.ts_event),
        version=account.version + 1,
    )
    if account.equity_16 > account.peak_equity_16:
        account = replace(account, peak_equity_16=account.equity_16)
    return account, CashOutcome(APPLIED)


def invalid_cash_alert(movement: CashMovement, reason: str) -> RiskAlert:
    """One alert per refused movement (its id from the movement's): the account's cash now
    differs from what the custodian booked."""
    key = AlertKey(INVALID_CASH_MOVEMENT, movement.account_id, None)
    return RiskAlert(
        alert_id=alert_id(key, movement.movement_id, "INVALID"),
        rule=INVALID_CASH_MOVEMENT,
        severity=Severity.CRITICAL,
        account_id=movement.account_id,
        symbol=None,
        ts_event=movement.ts_event,
        observed=movement.amount,
        limit=None,
        message=(f"cash movement {movement.movement_id} ({movement.kind} {fmt(movement.amount)} "
                 f"{movement.currency}) not applied: {reason}"),
        source_event_id=movement.movement_id,
        unit=Unit.MONEY,
    )
