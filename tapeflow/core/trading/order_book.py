"""All orders of one shard of accounts: live orders, and recently ended ones for dedup.

Why ended orders are kept at all: a duplicate report for an order that just ended (a
re-sent FILL, a late CANCELED) must be recognised as a duplicate or refused, not mistaken
for a report about an unknown order. Why they are not kept forever: the state is
snapshotted by Bytewax and held in memory per shard, so it must be bounded.

Retention (`OrderRetention`), applied on every report, in event time so a replay evicts
exactly what the first run evicted:

* terminal orders are kept in the order they ended, in generations (`pmaps.GenerationLog`)
  of at most max(1, max_terminal // 16) orders spanning at most terminal_ttl_us // 16 of
  event time, and evicted a whole generation at a time, oldest first;
* a generation is evicted once `terminal_ttl_us` (default 24 h) of event time has passed
  since the last order in it ended, measured against the newest report's ts_event (so an
  order is kept for between 1 and 1 1/16 TTLs);
* at most `max_terminal` (default 10,000) terminal orders are kept: while there are more,
  the oldest generation goes (so between max_terminal - max_terminal // 16 and
  max_terminal remain after a trim).

What eviction means: a later report for an evicted order is treated as for an unknown
order. A fill is then refused as invalid (and alerted), so eviction can never make a fill
count twice; a replayed NEW would re-open the order id, which is why the TTL should exceed
any plausible redelivery delay. Live orders are not evicted: they end when the OMS sends
their terminal report (DAY orders expire), so their number is the OMS's open-order count.
An ended order can come back to life (a trade bust re-opens a filled order, a filled order's
quantity is raised, scenarios D8 and D34): it leaves the ended ones and is live again.

State is immutable; the order maps are the copy-on-write structures of `pmaps`, so an
applied report costs O(orders / 64 + generation size), not O(orders), and the state still
pickles as plain tuples of dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from tapeflow.core.models import ExecutionReport, Side
from tapeflow.core.trading.orders import Applied, OrderState, Outcome, transition
from tapeflow.core.trading.pmaps import GenerationLog, ShardedMap

DEFAULT_TERMINAL_TTL_US = 24 * 3600 * 1_000_000
DEFAULT_MAX_TERMINAL = 10_000


@dataclass(frozen=True, slots=True)
class OrderRetention:
    max_terminal: int = DEFAULT_MAX_TERMINAL
    terminal_ttl_us: int = DEFAULT_TERMINAL_TTL_US


class OpenExposure(NamedTuple):
    """What the live orders of one (account, symbol) could still add, by side, kept
    incrementally so risk checks cost O(symbols), not O(live orders), per report."""

    buy_qty: int = 0
    sell_qty: int = 0
    buy_priced_16: int = 0
    """Sum of leaves x (limit price, else stop price) over buy orders that have one."""
    sell_priced_16: int = 0
    buy_unpriced_qty: int = 0
    """Leaves of buy orders with no price of their own (market orders): valued at the mark."""
    sell_unpriced_qty: int = 0


_NONE = OpenExposure()


def _contribution(order: OrderState) -> OpenExposure:
    leaves = order.leaves_qty
    px = order.limit_price if order.limit_price is not None else order.stop_price
    priced = 0 if px is None else leaves * px
    unpriced = leaves if px is None else 0
    if order.side == Side.BUY:
        return OpenExposure(leaves, 0, priced, 0, unpriced, 0)
    return OpenExposure(0, leaves, 0, priced, 0, unpriced)


def client_key(account_id: str, client_order_id: str) -> str:
    return f"{account_id}\x1f{client_order_id}"


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Orders by order_id. `terminal` is kept in the order the orders ended; `exposure`
    aggregates the live orders by (account_id, symbol); `clients` maps (account, ClOrdID)
    to the live orders using it, first first (`client_key`)."""

    live: Mapping[str, OrderState] = field(default_factory=dict)
    terminal: Mapping[str, OrderState] = field(default_factory=dict)
    retention: OrderRetention = OrderRetention()
    exposure: Mapping[tuple[str, str], OpenExposure] = field(default_factory=dict)
    clients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept plain mappings (tests, hand-built states); hold the persistent forms.
        if not isinstance(self.live, ShardedMap):
            object.__setattr__(self, "live", ShardedMap(self.live))
        if not isinstance(self.clients, ShardedMap):
            object.__setattr__(self, "clients", ShardedMap(self.clients))
        if not isinstance(self.terminal, GenerationLog):
            size = max(1, self.retention.max_terminal // 16)
            object.__setattr__(self, "terminal", GenerationLog(size, self.terminal))

    def get(self, order_id: str) -> OrderState | None:
        order = self.live.get(order_id)
        return order if order is not None else self.terminal.get(order_id)

    def open_orders(self, account_id: str, symbol: str | None = None) -> Iterator[OrderState]:
        """Live orders of one account (and symbol): what still may fill."""
        for order in self.live.values():
            if order.account_id == account_id and (symbol is None or order.symbol == symbol):
                yield order


def apply_execution(book: OrderBook, report: ExecutionReport) -> tuple[OrderBook, Outcome]:
    """Apply one report to the book; duplicates and invalid reports leave it unchanged.

    An ended order that a late report changes (a trade bust, a filled order's quantity
    raised) leaves the ended ones: re-opened it is live again, still ended it is appended as
    the newest ended order. A live order whose ClOrdID another live order of the account
    already uses is applied, and the outcome names the other order (`client_id_clash`).
    """
    before = book.get(report.order_id)
    after, outcome = transition(before, report)
    if not isinstance(outcome, Applied):
        return book, outcome
    assert after is not None
    live = ShardedMap.of(book.live)
    terminal = book.terminal
    assert isinstance(terminal, GenerationLog)
    if before is not None and before.is_terminal:
        terminal = terminal.remove(after.order_id)
    if after.is_terminal:
        live = live.remove(after.order_id)
        span = book.retention.terminal_ttl_us // 16
        started = terminal.newest_generation_start()
        start_new = started is not None and after.ts_last - started.ts_last > span
        terminal = terminal.append(after.order_id, after, start_new=start_new)
    else:
        live = live.set(after.order_id, after)
    clients, clash = _move_client_id(ShardedMap.of(book.clients), before, after)
    if clash is not None:
        outcome = outcome._replace(client_id_clash=clash)
    exposure = _move_exposure(book.exposure, before, after)
    updated = OrderBook(live, terminal, book.retention, exposure, clients)
    return _evict(updated, report.ts_event), outcome


def _client_id(order: OrderState | None) -> str | None:
    if order is None or order.is_terminal or order.client_order_id is None:
        return None
    return client_key(order.account_id, order.client_order_id)


def _move_client_id(clients: ShardedMap[tuple[str, ...]], before: OrderState | None,
                    after: OrderState) -> tuple[ShardedMap[tuple[str, ...]], str | None]:
    """Keep the live orders per ClOrdID; the clash is the earliest other live order that
    already uses the one `after` takes."""
    old, new = _client_id(before), _client_id(after)
    if old == new:
        return clients, None
    oid = after.order_id
    if old is not None:
        rest = tuple(o for o in clients.get(old, ()) if o != oid)
        clients = clients.set(old, rest) if rest else clients.remove(old)
    if new is None:
        return clients, None
    holders = clients.get(new, ())
    return clients.set(new, (*holders, oid)), holders[0] if holders else None


def _move_exposure(
    exposure: Mapping[tuple[str, str], OpenExposure],
    before: OrderState | None,
    after: OrderState,
) -> Mapping[tuple[str, str], OpenExposure]:
    old = _NONE if before is None or before.is_terminal else _contribution(before)
    new = _NONE if after.is_terminal else _contribution(after)
    if old == new:
        return exposure
    key = (after.account_id, after.symbol)
    t = exposure.get(key, _NONE)
    moved = OpenExposure(  # field by field: a zip over the fields cost twice as much
        t.buy_qty - old.buy_qty + new.buy_qty, t.sell_qty - old.sell_qty + new.sell_qty,
        t.buy_priced_16 - old.buy_priced_16 + new.buy_priced_16,
        t.sell_priced_16 - old.sell_priced_16 + new.sell_priced_16,
        t.buy_unpriced_qty - old.buy_unpriced_qty + new.buy_unpriced_qty,
        t.sell_unpriced_qty - old.sell_unpriced_qty + new.sell_unpriced_qty)
    out = dict(exposure)
    if moved == _NONE:
        out.pop(key, None)
    else:
        out[key] = moved
    return out


def evict(book: OrderBook, now_us: int) -> OrderBook:
    """Apply retention as of event time `now_us` (for idle periods with no reports)."""
    return _evict(book, now_us)


def _evict(book: OrderBook, now_us: int) -> OrderBook:
    keep = book.retention
    terminal = book.terminal
    assert isinstance(terminal, GenerationLog)
    horizon = now_us - keep.terminal_ttl_us
    excess = len(terminal) - keep.max_terminal
    drop = 0
    for _, last, size in terminal.generations():
        # Oldest first; stop at the first generation to keep, so this is O(evicted).
        if excess <= 0 and last.ts_last >= horizon:
            break
        excess -= size
        drop += 1
    if not drop:
        return book
    return OrderBook(book.live, terminal.drop_oldest_generations(drop), keep, book.exposure,
                     book.clients)


def open_quantities(book: OrderBook, account_id: str, symbol: str) -> tuple[int, int]:
    """Leaves quantity of live (buy, sell) orders: what could still add to a position."""
    exposure = book.exposure.get((account_id, symbol), _NONE)
    return exposure.buy_qty, exposure.sell_qty
