"""The exposure figures the equity rules read, kept so that a report costs O(1) in the number
of positions and live orders (issue 12): the opening-order notional by symbol (`Opening`),
and where a concentration breach is possible at all (`concentration_readings`).

`opening_order_notional_16` is the rule as written (every live (account, symbol) walked);
the kept form must always equal it (tests/unit/test_account_totals.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.risk.levels import Reading
from tapeflow.core.risk.limits import BPS, RiskLimits
from tapeflow.core.risk.rules import check_concentration
from tapeflow.core.trading.order_book import OrderBook
from tapeflow.core.trading.positions import AccountState, MarkPrice


class Opening(NamedTuple):
    """The opening-order notional of an account's live orders, kept per symbol.

    A symbol whose live orders all carry a price (limit or stop) contributes an amount that
    depends only on those orders and the position's quantity, both changed only by a report
    on that symbol: it is kept (`priced`, and its sum `priced_16`) and updated when such a
    report is assessed. A symbol with market orders (`unpriced`) is valued at the current
    mark, which moves without the account hearing of it (a mark of a symbol it does not
    hold), so it is valued again at every reading: O(symbols with live market orders)."""

    priced_16: int
    priced: Mapping[str, int]
    unpriced: tuple[str, ...]
    """Sorted (a tuple, not a set: snapshots pickle it in a stable order)."""


def mark_px_of(symbol: str, account: AccountState, marks: Mapping[str, MarkPrice]) -> int | None:
    mark = marks.get(symbol)
    if mark is not None:
        return mark.price
    position = account.positions.get(symbol)
    return position.mark_px if position is not None and position.qty != 0 else None


def _reducing_16(qty: int, priced_16: int, unpriced: int, position: int,
                 mark_px: int | None) -> int:
    """The notional of the part of one side's open orders (`qty` in all) that would reduce a
    position of `position` (same sign as this side's reducing direction, > 0): that side's
    value times min(qty, position) / qty, half-even (which of the orders reduces is not known,
    so the reducing part is valued at the side's average price)."""
    value = priced_16 + (unpriced * mark_px if unpriced and mark_px is not None else 0)
    reducing = min(qty, position)
    return value if reducing == qty else div_round(value * reducing, qty)


def opening_order_notional_16(
    book: OrderBook, account: AccountState, marks: Mapping[str, MarkPrice]
) -> int:
    """Notional (scale 16) of the account's live orders that would add to its exposure.

    A sell against a long (a buy against a short), up to the position's size, reduces
    exposure: it consumes no buying power, so its notional is taken out. An order with no
    price to value it by (a market order in a symbol with no mark yet) counts as zero here; it
    raises its own `unvalued_order` alert instead.
    """
    total = 0
    acct = account.account_id
    positions = account.positions
    # Unpacked, not by attribute: this runs for every live (account, symbol) on every fill
    # and mark.
    for (account_id, symbol), (bq, sq, bp, sp, bu, su) in book.exposure.items():
        if account_id != acct:
            continue
        total += bp + sp
        mark_px = None
        if bu or su:
            mark_px = mark_px_of(symbol, account, marks)
            if mark_px is not None:
                total += (bu + su) * mark_px
        position = positions.get(symbol)
        if position is None:
            continue
        qty = position.qty
        if qty > 0 and sq:
            # Every sell reduces the long (the common case), or a share of them does.
            total -= sp if not su and qty >= sq else _reducing_16(sq, sp, su, qty, mark_px)
        elif qty < 0 and bq:
            total -= bp if not bu and -qty >= bq else _reducing_16(bq, bp, bu, -qty, mark_px)
    return total


def symbolopening_16(symbol: str, exposure: tuple[int, int, int, int, int, int],
                       account: AccountState, marks: Mapping[str, MarkPrice]) -> int:
    """One symbol's part of `opening_order_notional_16` (the same arithmetic)."""
    bq, sq, bp, sp, bu, su = exposure
    total = bp + sp
    mark_px = None
    if bu or su:
        mark_px = mark_px_of(symbol, account, marks)
        if mark_px is not None:
            total += (bu + su) * mark_px
    position = account.positions.get(symbol)
    if position is None:
        return total
    qty = position.qty
    if qty > 0 and sq:
        total -= sp if not su and qty >= sq else _reducing_16(sq, sp, su, qty, mark_px)
    elif qty < 0 and bq:
        total -= bp if not bu and -qty >= bq else _reducing_16(bq, bp, bu, -qty, mark_px)
    return total


def build_opening(book: OrderBook, account: AccountState,
                   marks: Mapping[str, MarkPrice]) -> Opening:
    priced: dict[str, int] = {}
    unpriced: list[str] = []
    acct = account.account_id
    for (account_id, symbol), exposure in book.exposure.items():
        if account_id != acct:
            continue
        if exposure[4] or exposure[5]:
            unpriced.append(symbol)
        else:
            priced[symbol] = symbolopening_16(symbol, exposure, account, marks)
    return Opening(sum(priced.values()), priced, tuple(sorted(unpriced)))


def refresh_opening(opening: Opening | None, book: OrderBook, account: AccountState,
                     marks: Mapping[str, MarkPrice], symbols: Iterable[str]) -> Opening:
    """`opening` after a report on `symbols` changed their orders or positions."""
    if opening is None:
        return build_opening(book, account, marks)
    total, priced, unpriced = opening
    acct = account.account_id
    for symbol in symbols:
        exposure = book.exposure.get((acct, symbol))
        is_unpriced = exposure is not None and bool(exposure[4] or exposure[5])
        if is_unpriced != (symbol in unpriced):
            unpriced = tuple(sorted((*unpriced, symbol))) if is_unpriced else \
                tuple(s for s in unpriced if s != symbol)
        old = priced.get(symbol)
        new = None if exposure is None or is_unpriced else \
            symbolopening_16(symbol, exposure, account, marks)
        if old == new:
            continue
        priced = dict(priced)
        total -= old or 0
        if new is None:
            del priced[symbol]
        else:
            priced[symbol] = new
            total += new
    return Opening(total, priced, unpriced)


def opening_16(opening: Opening, book: OrderBook, account: AccountState,
                marks: Mapping[str, MarkPrice]) -> int:
    """The opening-order notional: the kept priced part plus the market orders valued now;
    equal to `opening_order_notional_16(book, account, marks)`."""
    total = opening.priced_16
    acct = account.account_id
    for symbol in opening.unpriced:
        total += symbolopening_16(symbol, book.exposure[(acct, symbol)], account, marks)
    return total


def abs_value(account: AccountState, symbol: str) -> int:
    position = account.positions.get(symbol)
    value = 0 if position is None else position.qty * position.mark_px
    return value if value >= 0 else -value


def concentration_readings(
    limits: RiskLimits, account: AccountState, kept: tuple[int | None, tuple[str, ...] | None],
    *, changed: str | None, source: str, equity_16: int,
) -> tuple[list[Reading], int, tuple[str, ...]]:
    """Concentration readings, and the new bound and open symbols (`kept`: the bound on the
    positions without an open incident and the open ones, as `RiskState` keeps them).

    A position breaches (WARNING or worse) only if |value| x BPS^2 > limit x min(warn, BPS) x
    equity (`limits.grade_ratio`), or if it has any value while equity <= 0. A reading
    "within limits" for a key with no level changes nothing, so when the bound on the
    positions without an incident rules out a breach among them, only the open incidents are
    read (in positions order, as the full check reads them): O(open incidents). Otherwise
    every position is checked, as the rule is written, and the bound becomes exact."""
    bound, is_open = kept
    if bound is not None and is_open is not None and changed is not None \
            and changed not in is_open:
        bound = max(bound, abs_value(account, changed))
    limit = limits.max_concentration_bps
    if bound is not None and is_open is not None and (
            bound == 0 or limit is None or (equity_16 > 0 and limit >= 0 and bound * BPS * BPS
                                            <= limit * min(limits.warn_bps, BPS) * equity_16)):
        if not is_open:
            return [], bound, is_open
        out: list[Reading] = []
        still: list[str] = []
        for symbol in is_open:
            readings = check_concentration(limits, account, symbol, source, equity_16)
            out += readings
            if any(r.severity is not None for r in readings):
                still.append(symbol)
            else:
                bound = max(bound, abs_value(account, symbol))
        return out, bound, tuple(still)
    out = []
    still = []
    largest = 0
    for symbol, position in account.positions.items():
        readings = check_concentration(limits, account, symbol, source, equity_16)
        out += readings
        if any(r.severity is not None for r in readings):
            still.append(symbol)
        else:
            value = position.qty * position.mark_px
            largest = max(largest, value if value >= 0 else -value)
    return out, largest, tuple(still)
