"""Reconciliation against someone else's records: a broker or clearing statement, and the
OMS's own final order state. Pure: the job reads the files and the stores.

Why: replaying Tapeflow's own audit trail through Tapeflow's own functions cannot see a report
that never reached Tapeflow, nor a core bug (it is reproduced on both sides). Records kept by
someone else can:

* A statement (docs/reconcile.md, "Statement file") says, per account, the position in each
  symbol and the cash, as of the end of the date. It is compared with the state replayed from
  the audit trail at the same cutoff (the as-of state, exact, whatever happened after): a
  position's quantity; an account's cash and currency. A symbol Tapeflow holds (non-zero) that
  the statement does not list, or the reverse, is a break, with the missing side None. An
  account that the statement does not list at all is not compared (a statement may cover
  some accounts only); `accounts` lists the ones it covers.
* The OMS's final order state (docs/reconcile.md, "OMS order file") says, per order, its
  cum_qty and OrdStatus from the last report the OMS sent. It is compared with Tapeflow's
  orders (the store's `orders`): a lost or misapplied report shows as a cum_qty or status
  break, an order Tapeflow never saw as a break with Tapeflow's side missing. Orders Tapeflow
  changed after the cutoff are skipped (counted); Tapeflow's orders the file does not list
  are not compared (a file may cover some orders only).

Break direction: `expected` is the outside record (statement, OMS), `actual` Tapeflow's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from tapeflow.core.models import OrdStatus
from tapeflow.core.trading.positions import AccountState
from tapeflow.core.trading.reconcile import ACCOUNT_LEVEL, OMS, STATEMENT, Break


class StatementRow(NamedTuple):
    """One row of a statement: a position (`symbol` set, `quantity`) or an account's cash
    (`symbol` empty, `cash` and `currency`). Scale-8 units."""

    account_id: str
    symbol: str
    quantity: int | None
    cash: int | None
    currency: str | None


class OmsOrder(NamedTuple):
    """One order as the OMS last reported it."""

    order_id: str
    account_id: str | None
    cum_qty: int
    status: OrdStatus


class StoredOrder(NamedTuple):
    """One order as Tapeflow holds it (the store's `orders` row)."""

    order_id: str
    account_id: str
    symbol: str
    cum_qty: int
    status: OrdStatus
    ts_last: int


def compare_statement(rows: Iterable[StatementRow], accounts: Mapping[str, AccountState]
                      ) -> tuple[list[Break], int]:
    """Breaks between a statement and the replayed accounts, and the rows compared."""
    positions: dict[tuple[str, str], int] = {}
    cash: dict[str, tuple[int | None, str | None]] = {}
    covered: set[str] = set()
    for row in rows:
        covered.add(row.account_id)
        if row.symbol == ACCOUNT_LEVEL:
            cash[row.account_id] = (row.cash, row.currency)
        else:
            key = (row.account_id, row.symbol)
            positions[key] = positions.get(key, 0) + (row.quantity or 0)
    breaks: list[Break] = []
    held = {(acct, sym): p.qty for acct in covered if acct in accounts
            for sym, p in accounts[acct].positions.items() if p.qty != 0}
    keys = set(positions) | set(held)
    for acct, sym in sorted(keys):
        want, have = positions.get((acct, sym)), held.get((acct, sym))
        if want != have and not (want == 0 and have is None):
            breaks.append(Break(acct, sym, "qty", want, have, STATEMENT))
    for acct in sorted(cash):
        want_cash, want_ccy = cash[acct]
        account = accounts.get(acct)
        have_cash = None if account is None else account.cash
        have_ccy = None if account is None else account.currency
        if want_ccy is not None and want_ccy != have_ccy:
            breaks.append(Break(acct, ACCOUNT_LEVEL, "currency", want_ccy, have_ccy, STATEMENT))
        if want_cash != have_cash:
            breaks.append(Break(acct, ACCOUNT_LEVEL, "cash", want_cash, have_cash, STATEMENT))
    return breaks, len(keys) + len(cash)


def compare_orders(oms: Iterable[OmsOrder], stored: Mapping[str, StoredOrder], cutoff: int
                   ) -> tuple[list[Break], int, int]:
    """Breaks between the OMS's final order state and Tapeflow's orders; the orders compared
    and those skipped (changed in Tapeflow after the cutoff)."""
    breaks: list[Break] = []
    compared = skipped = 0
    for order in sorted(oms, key=lambda o: o.order_id):
        mine = stored.get(order.order_id)
        if mine is not None and mine.ts_last >= cutoff:
            skipped += 1
            continue
        compared += 1
        account = mine.account_id if mine is not None else (order.account_id or "")
        symbol = mine.symbol if mine is not None else ""
        field = f"order:{order.order_id}"
        if mine is None:
            breaks.append(Break(account, symbol, f"{field}:cum_qty", order.cum_qty, None, OMS))
            breaks.append(Break(account, symbol, f"{field}:status", str(order.status), None,
                                OMS))
            continue
        if order.cum_qty != mine.cum_qty:
            breaks.append(Break(account, symbol, f"{field}:cum_qty", order.cum_qty,
                                mine.cum_qty, OMS))
        if order.status != mine.status:
            breaks.append(Break(account, symbol, f"{field}:status", str(order.status),
                                str(mine.status), OMS))
    return breaks, compared, skipped
