"""The candle builder's buckets: the `Candle` record and its configuration, and the per-symbol,
per-width state with the accumulator the fold updates (`tapeflow.core.market.candles` holds the
fold and its rules; read its docstring first).

The accumulator is a list mutated in place, indexed by the constants below: the cheapest
per-trade update in CPython. The open and close trades are kept whole for the
(seq, venue, price) tie-break; their timestamps are copied out because list indexing is much
cheaper than NamedTuple attribute reads.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.market.conditions import PRICE_BIT, REGULAR
from tapeflow.core.models import Trade

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US


class Candle(NamedTuple):
    """One bucket of one symbol. Prices and volume scale 8, notional scale 16."""

    symbol: str
    bucket: int
    """Start, microseconds since the epoch, UTC."""
    width_us: int
    open: int | None
    """None (and high, low, close): every print of the bucket was volume-only."""
    high: int | None
    low: int | None
    close: int | None
    volume: int
    notional: int
    vwap: int
    trade_count: int
    version: int


@dataclass(frozen=True, slots=True)
class CandleConfig:
    widths_us: tuple[int, ...] = (SECOND_US, MINUTE_US)
    allowed_lateness_us: int = 5 * SECOND_US
    retention_us: int = HOUR_US
    idle_timeout_us: int = 5 * SECOND_US

    def __post_init__(self) -> None:
        if not self.widths_us or any(w <= 0 for w in self.widths_us):
            raise ValueError("widths_us must be positive")
        if len(set(self.widths_us)) != len(self.widths_us):
            raise ValueError("widths_us must not repeat")
        if self.allowed_lateness_us < 0 or self.retention_us < 0 or self.idle_timeout_us < 0:
            raise ValueError("lateness, retention and idle timeout must not be negative")


DEFAULT_CANDLE_CONFIG = CandleConfig()

OPEN_TS, OPEN, HIGH, LOW, CLOSE_TS, CLOSE, VOLUME, NOTIONAL, COUNT = range(9)
NOTHING = -(2**64)
NEVER = 2**64
EMPTY: tuple[Candle, ...] = ()
new_tuple = tuple.__new__


class Width:
    """Buckets of one width for one symbol."""

    __slots__ = ("cur", "cur_bucket", "emitted", "heap", "next_end", "open", "symbol", "width")

    def __init__(self, symbol: str, width: int) -> None:
        self.symbol = symbol
        self.width = width
        self.cur_bucket = NOTHING
        self.cur: list[object] = []
        self.open: dict[int, list[object]] = {}
        self.next_end = NEVER
        self.emitted: dict[int, list[object]] = {}
        self.heap: list[int] = []

    def state(self) -> tuple[object, ...]:
        return (self.width, self.open, self.emitted, sorted(self.heap), self.next_end)


class SymbolBuckets:
    __slots__ = ("arrival", "max_ts", "widths")

    def __init__(self, symbol: str, widths: tuple[int, ...]) -> None:
        self.max_ts = NOTHING
        self.arrival: int | None = None
        self.widths = tuple(Width(symbol, w) for w in widths)


COUNTERS = (
    "too_late",
    "non_positive",
    "emitted",
    "corrections",
    "late_new",
    "idle_closes",
)


class CandleState:
    """Open and retained buckets per symbol, and counters.

    Counters: `too_late`, `non_positive`, `emitted` (first emissions), `corrections`
    (re-emissions), `late_new` (a late trade started a bucket that was then emitted at once),
    `idle_closes` (buckets emitted by the wall clock).
    """

    __slots__ = ("counters", "symbols")

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolBuckets] = {}
        # Plain dict, keys present: the fast subscript path (see tick_filter.FilterState).
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CandleState):
            return NotImplemented
        return self.counters == other.counters and self._content() == other._content()

    __hash__ = None  # type: ignore[assignment]

    def _content(self) -> dict[str, tuple[object, ...]]:
        return {
            s: (sym.max_ts, sym.arrival, tuple(w.state() for w in sym.widths))
            for s, sym in self.symbols.items()
        }


def candle_of(symbol: str, bucket: int, width: int, acc: list[object]) -> Candle:
    first: Trade | None = acc[OPEN]  # type: ignore[assignment]
    last: Trade = acc[CLOSE]  # type: ignore[assignment]
    volume: int = acc[VOLUME]  # type: ignore[assignment]
    notional: int = acc[NOTIONAL]  # type: ignore[assignment]
    if first is None:  # only volume-only prints: no prices
        return new_tuple(
            Candle,
            (symbol, bucket, width, None, None, None, None, volume, notional,
             div_round(notional, volume), acc[COUNT], acc[COUNT]),
        )
    # tuple.__new__ skips the NamedTuple's Python-level __new__: about 2.5x cheaper, and the
    # 1 s width emits about one candle per trade on a thin tape.
    return new_tuple(
        Candle,
        (
            symbol,
            bucket,
            width,
            first.price,
            acc[HIGH],
            acc[LOW],
            last.price,
            volume,
            notional,
            div_round(notional, volume),
            acc[COUNT],
            acc[COUNT],  # version = trade_count (module docstring, "Versions")
        ),
    )


def tie(acc: list[object], trade: Trade) -> None:
    """Same ts_event as the open or the close: order by (seq, venue, price)."""
    ts = trade.ts_event
    key = (trade.seq, trade.venue, trade.price)
    if ts == acc[CLOSE_TS]:
        last: Trade = acc[CLOSE]  # type: ignore[assignment]
        if key >= (last.seq, last.venue, last.price):
            acc[CLOSE] = trade
    if ts == acc[OPEN_TS]:
        first: Trade = acc[OPEN]  # type: ignore[assignment]
        if key < (first.seq, first.venue, first.price):
            acc[OPEN] = trade


def update(acc: list[object], trade: Trade, effect: int = REGULAR) -> None:
    """Fold one trade into an accumulator (the slow-path twin of the inline code in
    add_trade_inplace)."""
    ts = trade.ts_event
    price = trade.price
    acc[VOLUME] += trade.size  # type: ignore[operator]
    acc[NOTIONAL] += price * trade.size  # type: ignore[operator]
    acc[COUNT] += 1  # type: ignore[operator]
    if not effect & PRICE_BIT:
        return
    if acc[OPEN] is None:  # the bucket's first print that sets prices
        acc[OPEN_TS] = acc[CLOSE_TS] = ts
        acc[OPEN] = acc[CLOSE] = trade
        acc[HIGH] = acc[LOW] = price
        return
    acc[HIGH] = max(acc[HIGH], price)  # type: ignore[call-overload]
    acc[LOW] = min(acc[LOW], price)  # type: ignore[call-overload]
    if ts > acc[CLOSE_TS]:  # type: ignore[operator]
        acc[CLOSE_TS] = ts
        acc[CLOSE] = trade
    elif ts < acc[OPEN_TS]:  # type: ignore[operator]
        acc[OPEN_TS] = ts
        acc[OPEN] = trade
    elif ts == acc[CLOSE_TS] or ts == acc[OPEN_TS]:
        tie(acc, trade)


def new_acc(trade: Trade, effect: int = REGULAR) -> list[object]:
    _symbol, _venue, ts, _seq, price, size, _trade_id, _conditions = trade
    if not effect & PRICE_BIT:
        return [NEVER, None, None, None, NOTHING, None, size, price * size, 1]
    return [ts, trade, price, price, ts, trade, size, price * size, 1]


def retain(w: Width, bucket: int, acc: list[object]) -> None:
    w.emitted[bucket] = acc
    heapq.heappush(w.heap, bucket)


def prune(w: Width, floor: int) -> None:
    """Forget emitted buckets that end at or before `floor` (= watermark - retention)."""
    heap = w.heap
    width = w.width
    emitted = w.emitted
    while heap and heap[0] + width <= floor:
        del emitted[heapq.heappop(heap)]


def close_due(w: Width, until: int, counters: dict[str, int], key: str) -> list[Candle]:
    """Emit every open bucket of `w` that ends at or before `until`, in bucket order."""
    width = w.width
    opened = w.open
    due = [b for b in opened if b + width <= until]
    if len(due) > 1:  # usually exactly one bucket falls due
        due.sort()
    out = []
    symbol = w.symbol
    emitted = w.emitted
    heap = w.heap
    for bucket in due:
        acc = opened.pop(bucket)
        out.append(candle_of(symbol, bucket, width, acc))
        emitted[bucket] = acc
        heapq.heappush(heap, bucket)
        if bucket == w.cur_bucket:
            w.cur_bucket = NOTHING
    counters[key] += len(due)
    w.next_end = min(opened) + width if opened else NEVER
    return out
