"""Average-cost positions and account P&L, exact.

Representation (the rounding decision): money is kept *internally* at scale 16
(`NOTIONAL_SCALE`, fields suffixed `_16`), where qty x price of two scale-8 numbers is exact.
A position carries its signed quantity and its signed *cost basis* (sum of qty x price of
what is still open), not a rounded average cost. Consequences:

* Opening and adding are exact. The average cost is cost_basis / qty, reported at scale 8
  rounded half-even (`avg_cost`); it is never fed back into the arithmetic.
* Closing part of a position removes the closed share of the cost basis,
  cost_basis x closed / open, rounded half-even at scale 16 (error <= 0.5e-16 per partial
  close); closing all of it removes the whole remaining basis. So the rounding telescopes
  away: whenever a position is flat, realised P&L = sell notional - buy notional -
  commissions exactly, with no residue, however many partial closes it took.
* unrealised = qty x mark - cost_basis, so realised + unrealised = cash change + market
  value holds exactly at scale 16 at every step.
* Scale-8 views (`cash`, `realised_pnl`, `equity`, ...) round the exact value half-even
  once, for the wire and the stores (Avro decimal(18, 8)); each is within 0.5e-8 of exact.

A fill that crosses zero closes the old position (realising P&L on it) and opens the rest
at the fill price. Commissions reduce realised P&L (a negative commission, a rebate,
increases it). Cash moves with every fill: buy cash -= qty x px + commission; sell
cash += qty x px - commission.

Marks: a position is valued at the latest market mark for its symbol (event time; an older
mark than the one held is ignored, so out-of-order marks cannot move it backwards); until
a market mark arrives, at the price of the fill that opened it (`mark_ts` stays None,
which the stale-data rule sees). Marks for flat positions are not tracked: they change no
value, and every tracked change bumps a version that downstream writes.

The trading day for the daily-loss rule is the UTC calendar day of event time: the first
event of a new day records the equity before it as `day_start_equity`.

Versions: a position's `version` and the account's `version` grow by one with every change
to them, so the stores' upserts never move a row backwards on replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from tapeflow.core.fixedpoint import ONE, div_round
from tapeflow.core.models import Side
from tapeflow.core.trading.orders import Fill

DAY_US = 86_400 * 1_000_000


def to_scale8(units_16: int) -> int:
    """Scale-16 money to scale-8 units, rounded half-even."""
    return div_round(units_16, ONE)


class MarkPrice(NamedTuple):
    """The latest market price of a symbol (last clean trade, or quote mid when configured)."""

    symbol: str
    price: int
    ts_event: int
    source_id: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    account_id: str
    symbol: str
    qty: int
    cost_basis_16: int
    realised_16: int
    commissions: int
    mark_px: int
    mark_ts: int | None
    opened_ts: int | None
    ts_last: int
    version: int

    @property
    def avg_cost(self) -> int | None:
        """Average cost per unit, scale 8, half-even; None when flat."""
        if self.qty == 0:
            return None
        return div_round(self.cost_basis_16, self.qty)

    @property
    def market_value_16(self) -> int:
        return self.qty * self.mark_px

    @property
    def unrealised_16(self) -> int:
        return self.market_value_16 - self.cost_basis_16

    @property
    def realised_pnl(self) -> int:
        return to_scale8(self.realised_16)

    @property
    def unrealised_pnl(self) -> int:
        return to_scale8(self.unrealised_16)

    @property
    def market_value(self) -> int:
        return to_scale8(self.market_value_16)


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    cash_16: int = 0
    realised_16: int = 0
    commissions: int = 0
    positions: Mapping[str, Position] = field(default_factory=dict)
    peak_equity_16: int = 0
    day: int | None = None
    day_start_equity_16: int = 0
    ts_last: int = 0
    version: int = 0

    @property
    def market_value_16(self) -> int:
        return sum(p.market_value_16 for p in self.positions.values())

    @property
    def gross_exposure_16(self) -> int:
        return sum(abs(p.market_value_16) for p in self.positions.values())

    @property
    def unrealised_16(self) -> int:
        return sum(p.unrealised_16 for p in self.positions.values())

    @property
    def equity_16(self) -> int:
        return self.cash_16 + self.market_value_16

    @property
    def daily_pnl_16(self) -> int:
        return self.equity_16 - self.day_start_equity_16

    @property
    def cash(self) -> int:
        return to_scale8(self.cash_16)

    @property
    def realised_pnl(self) -> int:
        return to_scale8(self.realised_16)

    @property
    def unrealised_pnl(self) -> int:
        return to_scale8(self.unrealised_16)

    @property
    def equity(self) -> int:
        return to_scale8(self.equity_16)

    @property
    def peak_equity(self) -> int:
        return to_scale8(self.peak_equity_16)

    @property
    def gross_exposure(self) -> int:
        return to_scale8(self.gross_exposure_16)


def new_account(account_id: str, cash: int = 0) -> AccountState:
    """An account with starting `cash` (scale 8) and no positions."""
    cash_16 = cash * ONE
    return AccountState(
        account_id=account_id,
        cash_16=cash_16,
        peak_equity_16=cash_16,
        day_start_equity_16=cash_16,
    )


def _roll_day(account: AccountState, ts_event: int) -> AccountState:
    day = ts_event // DAY_US
    if account.day is not None and day <= account.day:
        return account
    return replace(account, day=day, day_start_equity_16=account.equity_16)


def _with_position(account: AccountState, position: Position, ts_event: int) -> AccountState:
    positions = dict(account.positions)
    positions[position.symbol] = position
    updated = replace(
        account,
        positions=positions,
        ts_last=max(account.ts_last, ts_event),
        version=account.version + 1,
    )
    equity = updated.equity_16
    if equity > updated.peak_equity_16:
        updated = replace(updated, peak_equity_16=equity)
    return updated


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def apply_fill(
    account: AccountState, fill: Fill, market: MarkPrice | None = None
) -> tuple[AccountState, Position]:
    """Book one fill: position, realised P&L, commissions, cash, peak equity.

    `market` is the latest market mark for the symbol, used only when the position has
    none yet. Idempotence is the caller's job (orders dedup by exec_id and cum_qty); this
    function books what it is given.
    """
    account = _roll_day(account, fill.ts_event)
    q = fill.qty if fill.side == Side.BUY else -fill.qty
    px = fill.price
    old = account.positions.get(fill.symbol)
    if old is None:
        old = Position(fill.account_id, fill.symbol, 0, 0, 0, 0, px, None, None, 0, 0)
    qty, basis, realised = old.qty, old.cost_basis_16, old.realised_16
    opened_ts = old.opened_ts
    if qty == 0 or _sign(qty) == _sign(q):
        if qty == 0:
            opened_ts = fill.ts_event
        qty, basis = qty + q, basis + q * px
    else:
        closed = min(abs(q), abs(qty))
        removed = basis if closed == abs(qty) else div_round(basis * closed, abs(qty))
        closing = _sign(q) * closed
        realised += -closing * px - removed
        qty, basis = qty + closing, basis - removed
        rest = q - closing
        if rest != 0:
            qty, basis, opened_ts = rest, rest * px, fill.ts_event
        elif qty == 0:
            opened_ts = None
    commission_16 = fill.commission * ONE
    realised -= commission_16
    mark_px, mark_ts = old.mark_px, old.mark_ts
    if old.qty == 0:
        # A re-opened position starts from the freshest price it can know.
        mark_px, mark_ts = px, None
    if mark_ts is None and market is not None and market.symbol == fill.symbol:
        mark_px, mark_ts = market.price, market.ts_event
    position = Position(
        account_id=old.account_id,
        symbol=old.symbol,
        qty=qty,
        cost_basis_16=basis,
        realised_16=realised,
        commissions=old.commissions + fill.commission,
        mark_px=mark_px,
        mark_ts=mark_ts,
        opened_ts=opened_ts,
        ts_last=max(old.ts_last, fill.ts_event),
        version=old.version + 1,
    )
    account = replace(
        account,
        cash_16=account.cash_16 - q * px - commission_16,
        realised_16=account.realised_16 + (realised - old.realised_16),
        commissions=account.commissions + fill.commission,
    )
    return _with_position(account, position, fill.ts_event), position


def apply_mark(account: AccountState, mark: MarkPrice) -> tuple[AccountState, Position | None]:
    """Revalue the account's open position in `mark.symbol`; unchanged if none is open."""
    old = account.positions.get(mark.symbol)
    if old is None or old.qty == 0:
        return account, None
    if old.mark_ts is not None and (
        mark.ts_event < old.mark_ts or (mark.ts_event == old.mark_ts and mark.price == old.mark_px)
    ):
        return account, None
    account = _roll_day(account, mark.ts_event)
    position = replace(
        old,
        mark_px=mark.price,
        mark_ts=mark.ts_event,
        ts_last=max(old.ts_last, mark.ts_event),
        version=old.version + 1,
    )
    return _with_position(account, position, mark.ts_event), position
