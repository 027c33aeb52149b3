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

Marks: a position is valued at the newest price known for its symbol, by event time: the
latest market mark, or its own last fill when that is newer (`price_ts` is the event time
of the price held, `mark_ts` that of the market mark when the price is one, else None). So
without a market mark a position is valued at its last fill, not the fill that opened it,
and a market mark older than the last fill never replaces it; an older price than the one
held is ignored, so out-of-order marks cannot move it backwards. Marks for flat positions
are not tracked: they change no value, and every tracked change bumps a version that
downstream writes.

Trade busts and corrections (`apply_correction`): each position keeps a journal of its last
`JOURNAL_SIZE` fills with the book (qty, basis, realised, commissions) before each. A bust
or correction of a journalled fill restores the book before it and books the later fills
again, without it or with it corrected: the position is exactly what it would have been had
the execution never happened, or happened as corrected. An older fill cannot be re-booked;
its effect is reversed at its own price (the opposite trade through the average-cost rule,
its commission refunded): quantity, cash, commissions and total P&L are still exact, only
the split between realised and unrealised P&L can differ from a full re-booking.

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
JOURNAL_SIZE = 256
"""Fills remembered per position for exact re-booking after a bust or correction."""
DEFAULT_CURRENCY = "USD"


def to_scale8(units_16: int) -> int:
    """Scale-16 money to scale-8 units, rounded half-even."""
    return div_round(units_16, ONE)


class MarkPrice(NamedTuple):
    """The latest market price of a symbol (last clean trade, or quote mid when configured)."""

    symbol: str
    price: int
    ts_event: int
    source_id: str = ""


class Book(NamedTuple):
    """What the fills of a position decide: signed qty, cost basis, realised P&L (scale 16,
    commissions included), commissions, and when the open position was opened."""

    qty: int
    basis_16: int
    realised_16: int
    commissions: int
    opened_ts: int | None


class Booked(NamedTuple):
    """One fill in a position's journal, with the book before it."""

    exec_id: str
    qty: int
    """Signed: positive bought, negative sold."""
    price: int
    commission: int
    ts_event: int
    before: Book


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
    price_ts: int | None = None
    """Event time of `mark_px`: a market mark's, or the fill's that set it."""
    journal: tuple[Booked, ...] = ()

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

    @property
    def book(self) -> Book:
        return Book(self.qty, self.cost_basis_16, self.realised_16, self.commissions,
                    self.opened_ts)


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
    currency: str = DEFAULT_CURRENCY
    net_deposits: int = 0
    """Deposits minus withdrawals (scale 8): capital, not P&L."""
    fees: int = 0
    """Account fees charged (scale 8): P&L, outside any position."""
    movement_ids: tuple[str, ...] = ()
    """The most recent cash movements applied (for duplicates)."""

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


def new_account(account_id: str, cash: int = 0, currency: str = DEFAULT_CURRENCY
                ) -> AccountState:
    """An account with starting `cash` (scale 8) in `currency` and no positions."""
    cash_16 = cash * ONE
    return AccountState(
        account_id=account_id,
        cash_16=cash_16,
        peak_equity_16=cash_16,
        day_start_equity_16=cash_16,
        currency=currency,
    )


def roll_day(account: AccountState, ts_event: int) -> AccountState:
    """The first event of a new UTC day records the equity before it."""
    day = ts_event // DAY_US
    if account.day is not None and day <= account.day:
        return account
    return replace(account, day=day, day_start_equity_16=account.equity_16)


def with_position(account: AccountState, position: Position, ts_event: int) -> AccountState:
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


def book_trade(book: Book, q: int, px: int, commission: int, ts: int) -> Book:
    """The average-cost rule: one signed trade of `q` at `px` on a book."""
    qty, basis, realised, opened_ts = book.qty, book.basis_16, book.realised_16, book.opened_ts
    if qty == 0 or _sign(qty) == _sign(q):
        if qty == 0:
            opened_ts = ts
        qty, basis = qty + q, basis + q * px
    else:
        closed = min(abs(q), abs(qty))
        removed = basis if closed == abs(qty) else div_round(basis * closed, abs(qty))
        closing = _sign(q) * closed
        realised += -closing * px - removed
        qty, basis = qty + closing, basis - removed
        rest = q - closing
        if rest != 0:
            qty, basis, opened_ts = rest, rest * px, ts
        elif qty == 0:
            opened_ts = None
    return Book(qty, basis, realised - commission * ONE, book.commissions + commission,
                opened_ts)


def signed(side: Side, qty: int) -> int:
    return qty if side == Side.BUY else -qty


def _newest_price(held: tuple[int, int | None, int | None], px: int, ts: int,
                  market: MarkPrice | None) -> tuple[int, int | None, int | None]:
    """(price, its event time, market mark time or None) after a fill at `px`, `ts`: the
    newest of the price held, the fill and the market mark; a market mark wins a tie."""
    best = held
    if best[1] is None or ts > best[1] or (ts == best[1] and best[2] is None):
        best = (px, ts, None)
    if market is not None and (best[1] is None or market.ts_event >= best[1]):
        best = (market.price, market.ts_event, market.ts_event)
    return best


def apply_fill(
    account: AccountState, fill: Fill, market: MarkPrice | None = None
) -> tuple[AccountState, Position]:
    """Book one fill: position, realised P&L, commissions, cash, peak equity.

    `market` is the latest market mark for the symbol: it values the position when it is
    newer than the fill. Idempotence is the caller's job (orders dedup by exec_id and
    cum_qty); this function books what it is given.
    """
    account = roll_day(account, fill.ts_event)
    q = signed(fill.side, fill.qty)
    old = account.positions.get(fill.symbol)
    if old is None:
        old = Position(fill.account_id, fill.symbol, 0, 0, 0, 0, fill.price, None, None, 0, 0)
    before = old.book
    after = book_trade(before, q, fill.price, fill.commission, fill.ts_event)
    held = (old.mark_px, old.price_ts, old.mark_ts) if old.qty != 0 else (0, None, None)
    if market is not None and market.symbol != fill.symbol:
        market = None
    mark_px, price_ts, mark_ts = _newest_price(held, fill.price, fill.ts_event, market)
    entry = Booked(fill.exec_id, q, fill.price, fill.commission, fill.ts_event, before)
    journal = (*old.journal, entry)
    position = Position(  # built directly: dataclasses.replace costs several times more
        old.account_id, old.symbol, after.qty, after.basis_16, after.realised_16,
        after.commissions, mark_px, mark_ts, after.opened_ts, max(old.ts_last, fill.ts_event),
        old.version + 1, price_ts,
        journal if len(journal) <= JOURNAL_SIZE else journal[-JOURNAL_SIZE:],
    )
    account = replace(
        account,
        cash_16=account.cash_16 - q * fill.price - fill.commission * ONE,
        realised_16=account.realised_16 + (after.realised_16 - before.realised_16),
        commissions=account.commissions + fill.commission,
    )
    return with_position(account, position, fill.ts_event), position


def apply_mark(account: AccountState, mark: MarkPrice) -> tuple[AccountState, Position | None]:
    """Revalue the account's open position in `mark.symbol`; unchanged if none is open or
    the mark is older than the price held (a market mark's or the last fill's)."""
    old = account.positions.get(mark.symbol)
    if old is None or old.qty == 0:
        return account, None
    held = old.price_ts if old.price_ts is not None else old.mark_ts
    if held is not None and (
        mark.ts_event < held or (mark.ts_event == held and mark.price == old.mark_px)
    ):
        return account, None
    account = roll_day(account, mark.ts_event)
    position = Position(
        old.account_id, old.symbol, old.qty, old.cost_basis_16, old.realised_16,
        old.commissions, mark.price, mark.ts_event, old.opened_ts,
        max(old.ts_last, mark.ts_event), old.version + 1, mark.ts_event, old.journal,
    )
    return with_position(account, position, mark.ts_event), position
