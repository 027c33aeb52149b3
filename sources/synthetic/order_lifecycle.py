"""One synthetic order's life: its instrument, its state, its plan, and when the market fills it.

Split from the order simulator (`sources.synthetic.orders`, which schedules the steps and
writes the FIX reports) so that what can happen to an order reads in one place: each order
draws a *plan* when it is created (acknowledge, then some of: partial fills, fill, cancel,
replace, expire; or a straight reject), and a fill happens only when the market is at the
order (`LiveOrder.fill_price`), so fill prices lie between the bid and the ask.
"""

from __future__ import annotations

from random import Random
from typing import NamedTuple

from tapeflow.core.models import OrderType, Side

# Plan actions.
NEW = 0
FILL = 1
CANCEL = 2
REPLACE = 3
EXPIRE = 4
REJECT = 5

REJECT_REASONS = (
    "INSUFFICIENT_BUYING_POWER",
    "PRICE_OUTSIDE_COLLAR",
    "EXCEEDS_MAX_ORDER_QTY",
    "DUPLICATE_CLORDID",
)


class Book(NamedTuple):
    """What the order simulator needs to know about one instrument."""

    symbol: str
    tick: int
    """Tick size, scale-8 units."""
    lot: int
    """Lot size, scale-8 units."""
    round_lots: int
    """Lots in one round lot (100 shares for a one-share lot)."""


Step = tuple[int, int, float]
"""(delay after the previous step in micros, action, fill fraction of the leaves)."""


class LiveOrder:
    """An order the simulator is running: what was asked, what is filled, where its plan is."""

    __slots__ = (
        "account",
        "book",
        "clordid",
        "cum",
        "limit",
        "n_exec",
        "n_replace",
        "notional",
        "order_id",
        "otype",
        "plan",
        "qty",
        "retries",
        "s",
        "side",
        "step",
        "stop",
        "triggered",
    )

    def __init__(
        self,
        *,
        order_id: str,
        clordid: str,
        account: str,
        s: int,
        book: Book,
        side: Side,
        otype: OrderType,
        qty: int,
        limit: int | None,
        stop: int | None,
        plan: tuple[Step, ...],
    ) -> None:
        self.order_id = order_id
        self.clordid = clordid
        self.account = account
        self.s = s
        self.book = book
        self.side = side
        self.otype = otype
        self.qty = qty
        self.limit = limit
        self.stop = stop
        self.plan = plan
        self.step = 0
        self.cum = 0
        self.notional = 0
        self.n_exec = 0
        self.n_replace = 0
        self.retries = 0
        self.triggered = stop is None

    def fill_price(self, bid: int, ask: int) -> int | None:
        """The price the order can fill at against (`bid`, `ask`), or None when the market is
        not there.

        A stop must have been triggered (the market reached the stop price; this call records
        the trigger); a limit order fills when it is marketable (at the opposite touch) or is
        itself the best price on its side (at its limit). Fill prices therefore lie between the
        bid and the ask.
        """
        buy = self.side is Side.BUY
        if not self.triggered:
            assert self.stop is not None
            if (ask < self.stop) if buy else (bid > self.stop):
                return None
            self.triggered = True
        limit = self.limit
        if limit is None:
            return ask if buy else bid
        if buy:
            return None if limit < bid else min(limit, ask)
        return None if limit > ask else max(limit, bid)


def draw_plan(otype: OrderType, rng: Random) -> tuple[Step, ...]:
    """The order's future: (delay after the previous step in micros, action, fill fraction)."""
    rnd = rng.random
    ack = 200 + int(rnd() * 2_800)
    if rnd() < 0.03:
        return ((ack, REJECT, 0.0),)
    steps: list[Step] = [(ack, NEW, 0.0)]
    expo = rng.expovariate

    def fills(n: int, mean_gap_us: float, last: bool = True) -> None:
        for i in range(n):
            frac = 1.0 if last and i == n - 1 else 0.2 + 0.4 * rnd()
            steps.append((1 + int(expo(1.0 / mean_gap_us)), FILL, frac))

    if otype is OrderType.MARKET:
        fills(1 + int(rnd() * 3), 2_000.0)
        return tuple(steps)
    u = rnd()
    if otype is OrderType.LIMIT:
        if u < 0.45:
            fills(1 + int(rnd() * 4), 3e6)
        elif u < 0.57:
            fills(1 + int(rnd() * 2), 3e6, last=False)
            steps.append((1 + int(expo(1 / 5e6)), CANCEL, 0.0))
        elif u < 0.72:
            steps.append((1 + int(expo(1 / 5e6)), CANCEL, 0.0))
        elif u < 0.80:
            if rnd() < 0.5:
                fills(1, 3e6, last=False)
            steps.append((1 + int(expo(1 / 3e6)), REPLACE, 0.0))
            fills(1 + int(rnd() * 2), 3e6)
        elif u < 0.83:
            steps.append((1 + int(expo(1 / 3e6)), REPLACE, 0.0))
            steps.append((1 + int(expo(1 / 5e6)), CANCEL, 0.0))
        elif u < 0.88:
            steps.append((20_000_000 + int(rnd() * 100e6), EXPIRE, 0.0))
        elif u < 0.92:
            fills(1, 3e6, last=False)
            steps.append((20_000_000 + int(rnd() * 100e6), EXPIRE, 0.0))
        # else: rests on the book past the end of the run
        return tuple(steps)
    # STOP / STOP_LIMIT: triggered (filled), canceled, expired or resting.
    if u < 0.5:
        fills(1 + int(rnd() * 2), 10e6)
    elif u < 0.8:
        steps.append((1 + int(expo(1 / 10e6)), CANCEL, 0.0))
    elif u < 0.9:
        steps.append((20_000_000 + int(rnd() * 100e6), EXPIRE, 0.0))
    return tuple(steps)
