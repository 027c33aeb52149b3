"""Trade busts and corrections on positions: re-booking from a position's journal.

FIX 4.4 Trade Cancel (H) and Trade Correct (G) refer to an earlier execution (ExecRefID).
When that execution is still in the position's journal (its last `positions.JOURNAL_SIZE`
fills, each with the book before it), the book before it is restored and the fills after it
are booked again, without it (a bust) or with it as corrected, at its original place: the
position is then exactly what it would have been. An execution older than the journal is
reversed at its own price instead: the opposite trade through the average-cost rule, its
commission refunded, and the correction booked now; quantity, cash, commissions and total
P&L are still exact, only the realised/unrealised split may differ (docs/trading-core.md).
"""

from __future__ import annotations

from dataclasses import replace

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.trading.orders import Correction
from tapeflow.core.trading.positions import (
    JOURNAL_SIZE,
    AccountState,
    Book,
    Booked,
    Position,
    book_trade,
    roll_day,
    signed,
    with_position,
)


def _rebook(start: Book, entries: tuple[Booked, ...]) -> tuple[Book, tuple[Booked, ...]]:
    """Book `entries` again from `start`, each with its new book-before."""
    book, out = start, []
    for e in entries:
        out.append(e._replace(before=book))
        book = book_trade(book, e.qty, e.price, e.commission, e.ts_event)
    return book, tuple(out)


def apply_correction(account: AccountState, correction: Correction
                     ) -> tuple[AccountState, Position]:
    """Undo a busted execution, or replace it by its correction (see the module doc)."""
    ts = correction.ts_event
    account = roll_day(account, ts)
    old = account.positions.get(correction.symbol)
    if old is None:
        old = Position(correction.account_id, correction.symbol, 0, 0, 0, 0,
                       correction.old.price, None, None, 0, 0)
    gone = correction.old
    q_old = signed(correction.side, gone.qty)
    new = correction.new
    q_new = 0 if new is None else signed(new.side, new.qty)
    index = next((i for i, e in enumerate(old.journal) if e.exec_id == gone.exec_id), None)
    if index is not None:
        entries = old.journal[index + 1:]
        if new is not None:
            entries = (Booked(new.exec_id, q_new, new.price, new.commission, gone.ts_event,
                              old.journal[index].before), *entries)
        book, rebooked = _rebook(old.journal[index].before, entries)
        journal = (*old.journal[:index], *rebooked)
    else:
        reversal = Booked("", -q_old, gone.price, -gone.commission, ts, old.book)
        book = book_trade(old.book, -q_old, gone.price, -gone.commission, ts)
        journal = (*old.journal, reversal)
        if new is not None:
            journal = (*journal, Booked(new.exec_id, q_new, new.price, new.commission, ts, book))
            book = book_trade(book, q_new, new.price, new.commission, ts)
    position = replace(
        old, qty=book.qty, cost_basis_16=book.basis_16, realised_16=book.realised_16,
        commissions=book.commissions, opened_ts=book.opened_ts,
        ts_last=max(old.ts_last, ts), version=old.version + 1,
        journal=journal[-JOURNAL_SIZE:])
    cash_16 = account.cash_16 + q_old * gone.price + gone.commission * ONE
    if new is not None:
        cash_16 -= q_new * new.price + new.commission * ONE
    account = replace(
        account,
        cash_16=cash_16,
        realised_16=account.realised_16 + (book.realised_16 - old.realised_16),
        commissions=account.commissions + (book.commissions - old.commissions),
    )
    return with_position(account, position, ts), position
