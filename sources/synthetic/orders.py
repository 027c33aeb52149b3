"""Synthetic order flow: FIX 4.4 execution reports for a few accounts, priced off the market.

Used by the tape simulation (`sources.synthetic.tape`), which owns the clock and the market;
this module creates orders, runs their steps at their scheduled event times and writes the
reports. What can happen to one order (its plan, and when the market fills it) is in
`sources.synthetic.order_lifecycle`; fills are priced against the symbol's book at that moment.

FIX 4.4 choices, written down so the consumers agree with them:

* The first report is NEW (ord_status NEW) or, for a refused order, REJECTED (ord_status
  REJECTED, cum 0, leaves 0, `reject_reason` set). No PENDING_NEW report is sent.
* PARTIAL_FILL / FILL carry last_qty and last_px; cum_qty = previous cum + last_qty,
  leaves_qty = order_qty - cum_qty; FILL leaves nothing.
* REPLACED carries the new order_qty and limit_price, a new client_order_id, the same
  order_id; its ord_status is NEW or PARTIALLY_FILLED (FIX 4.4 retired OrdStatus REPLACED).
* CANCELED / EXPIRED: leaves_qty 0, cum_qty unchanged.
* avg_px is null until the first fill, then sum(last_qty * last_px) / cum_qty rounded
  half-even to scale 8. last_px is null when last_qty is 0. commission is null except on
  fills, where it is `commission_bps` basis points of the fill's notional, half-even, scale 8.
* exec_id = order_id + "-" + the report's number within the order; order_id carries the
  run tag of the market spec, so different specs do not collide in a shared store.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from random import Random

from sources.synthetic.order_lifecycle import (
    CANCEL,
    EXPIRE,
    FILL,
    NEW,
    REJECT,
    REJECT_REASONS,
    Book,
    LiveOrder,
    draw_plan,
)
from tapeflow.core.fixedpoint import ONE, div_round
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side

INF = 1 << 62
"""A time after any event (int micros), so heap heads compare as ints."""

_MAX_FILL_RETRIES = 30
"""A fill waits (about 2 s each time) at most this often for the market to reach the order."""


class OrderSim:
    """Order arrivals (Poisson at `order_rate`) and their lifecycles, run by a shared clock.

    The caller merges `next_ts` with its own events and calls `run_next()` when the order
    simulator is due; reports go out through `emit`, in event-time order.
    """

    def __init__(
        self,
        *,
        rng: Random,
        books: Sequence[Book],
        symbol_table: Sequence[int],
        accounts: Sequence[str],
        order_rate: float,
        start_us: int,
        end_us: int,
        commission_bps: int,
        id_prefix: str,
        quote: Callable[[int], tuple[int, int]],
        emit: Callable[[ExecutionReport], None],
    ) -> None:
        self._rng = rng
        self._books = books
        self._symbol_table = symbol_table
        self._accounts = accounts
        self._rate_per_us = order_rate / 1e6
        self._end = end_us
        self._commission_bps = commission_bps
        self._prefix = id_prefix
        self._quote = quote
        self._emit = emit
        self._heap: list[tuple[int, int, LiveOrder | None]] = []
        self._n = 0
        self._orders = 0
        if order_rate > 0 and accounts:
            self._push(start_us + self._gap(), None)

    @property
    def next_ts(self) -> int:
        """Event time of the next due step, or `INF`."""
        return self._heap[0][0] if self._heap else INF

    @property
    def orders_created(self) -> int:
        return self._orders

    def stop_after(self, ts: int) -> None:
        """Drop every step scheduled after `ts` (the market stopped early)."""
        self._end = min(self._end, ts)
        self._heap = [item for item in self._heap if item[0] <= ts]
        heapq.heapify(self._heap)

    def run_next(self) -> None:
        ts, _, order = heapq.heappop(self._heap)
        if order is None:
            self._create(ts)
            self._push(ts + self._gap(), None)
        else:
            self._step(order, ts)

    # -- internals ---------------------------------------------------------------------

    def _gap(self) -> int:
        return 1 + int(self._rng.expovariate(self._rate_per_us))

    def _push(self, ts: int, order: LiveOrder | None) -> None:
        if ts <= self._end:
            self._n += 1
            heapq.heappush(self._heap, (ts, self._n, order))

    def _create(self, ts: int) -> None:
        rng = self._rng
        rnd = rng.random
        s = self._symbol_table[int(rnd() * len(self._symbol_table))]
        book = self._books[s]
        account = self._accounts[int(rnd() * len(self._accounts))]
        side = Side.BUY if rnd() < 0.5 else Side.SELL
        u = rnd()
        otype = (
            OrderType.MARKET
            if u < 0.2
            else OrderType.LIMIT
            if u < 0.85
            else OrderType.STOP
            if u < 0.93
            else OrderType.STOP_LIMIT
        )
        round_lots = max(1, int((1.0 - rnd()) ** -0.8))
        qty = min(round_lots, 50) * book.round_lots * book.lot
        bid, ask = self._quote(s)
        tick = book.tick
        limit: int | None = None
        stop: int | None = None
        buy = side is Side.BUY
        if otype is OrderType.LIMIT:
            if rnd() < 0.25:  # marketable
                limit = ask + tick if buy else bid - tick
            else:
                away = (0, 0, 1, 1, 2, 3, 5, 8)[int(rnd() * 8)] * tick
                limit = bid - away if buy else ask + away
        elif otype is not OrderType.MARKET:
            away = (1 + int(rnd() * 4)) * tick
            stop = ask + away if buy else bid - away
            if otype is OrderType.STOP_LIMIT:
                limit = stop + 2 * tick if buy else stop - 2 * tick
        if limit is not None and limit < tick:
            limit = tick
        if stop is not None and stop < tick:
            stop = tick
        self._orders += 1
        order_id = f"{self._prefix}O{self._orders:07d}"
        clordid = f"{account}-{self._orders:07d}"
        plan = draw_plan(otype, rng)
        order = LiveOrder(
            order_id=order_id,
            clordid=clordid,
            account=account,
            s=s,
            book=book,
            side=side,
            otype=otype,
            qty=qty,
            limit=limit,
            stop=stop,
            plan=plan,
        )
        self._push(ts + plan[0][0], order)

    def _report(
        self,
        o: LiveOrder,
        ts: int,
        exec_type: ExecType,
        ord_status: OrdStatus,
        *,
        last_qty: int = 0,
        last_px: int | None = None,
        leaves: int = 0,
        commission: int | None = None,
        reject_reason: str | None = None,
    ) -> None:
        o.n_exec += 1
        self._emit(
            ExecutionReport(
                exec_id=f"{o.order_id}-{o.n_exec}",
                order_id=o.order_id,
                client_order_id=o.clordid,
                account_id=o.account,
                symbol=o.book.symbol,
                side=o.side,
                order_type=o.otype,
                exec_type=exec_type,
                ord_status=ord_status,
                order_qty=o.qty,
                limit_price=o.limit,
                stop_price=o.stop,
                last_qty=last_qty,
                last_px=last_px,
                cum_qty=o.cum,
                leaves_qty=leaves,
                avg_px=div_round(o.notional, o.cum) if o.cum else None,
                commission=commission,
                reject_reason=reject_reason,
                ts_event=ts,
            )
        )

    def _step(self, o: LiveOrder, ts: int) -> None:
        _, action, frac = o.plan[o.step]
        o.step += 1
        live = OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW
        if action == NEW:
            self._report(o, ts, ExecType.NEW, OrdStatus.NEW, leaves=o.qty)
        elif action == REJECT:
            reason = REJECT_REASONS[int(self._rng.random() * len(REJECT_REASONS))]
            self._report(o, ts, ExecType.REJECTED, OrdStatus.REJECTED, reject_reason=reason)
            return
        elif action == FILL:
            px = o.fill_price(*self._quote(o.s))
            if px is None:  # the market is not at the order: wait, or give up filling
                o.step -= 1
                o.retries += 1
                if o.retries <= _MAX_FILL_RETRIES:
                    self._push(ts + 1 + int(self._rng.expovariate(1 / 2e6)), o)
                    return
                while o.step < len(o.plan) and o.plan[o.step][1] == FILL:
                    o.step += 1
                if o.step < len(o.plan):
                    self._push(ts + o.plan[o.step][0], o)
                return
            leaves = o.qty - o.cum
            unit = o.book.lot
            q = leaves if frac >= 1.0 else int(leaves * frac) // unit * unit
            q = min(max(q, unit), leaves)
            o.cum += q
            o.notional += q * px
            commission = div_round(q * px * self._commission_bps, ONE * 10_000)
            leaves -= q
            done = leaves == 0
            self._report(
                o,
                ts,
                ExecType.FILL if done else ExecType.PARTIAL_FILL,
                OrdStatus.FILLED if done else OrdStatus.PARTIALLY_FILLED,
                last_qty=q,
                last_px=px,
                leaves=leaves,
                commission=commission,
            )
            if done:
                return
        elif action == CANCEL:
            self._report(o, ts, ExecType.CANCELED, OrdStatus.CANCELED)
            return
        elif action == EXPIRE:
            self._report(o, ts, ExecType.EXPIRED, OrdStatus.EXPIRED)
            return
        else:  # REPLACE: new size (always above what is filled) and a re-pegged limit
            rnd = self._rng.random
            unit = o.book.round_lots * o.book.lot
            new_qty = (o.qty * (5 + int(rnd() * 11)) // 10) // unit * unit
            o.qty = max(new_qty, o.cum + o.book.lot)
            if o.limit is not None:
                bid, ask = self._quote(o.s)
                away = int(rnd() * 3) * o.book.tick
                o.limit = max(bid - away if o.side is Side.BUY else ask + away, o.book.tick)
            o.n_replace += 1
            o.clordid = f"{o.clordid.split('/')[0]}/R{o.n_replace}"
            self._report(o, ts, ExecType.REPLACED, live, leaves=o.qty - o.cum)
        if o.step < len(o.plan):
            self._push(ts + o.plan[o.step][0], o)
