"""OHLCV candles as a fold of clean trades into epoch-aligned event-time buckets.

Semantics (docs/design.md, "Semantics"), made precise:

- A bucket of width w starts at `ts - ts % w` (UTC epoch aligned) and ends at start + w
  (exclusive). Several widths are built from one trade stream (`CandleConfig.widths_us`,
  default 1 s and 1 min).
- Open is the first trade by (ts_event, seq), close the last. Ties between venues (same
  ts_event and seq) are broken by venue, then price, so the result does not depend on arrival
  order; trades equal in all four have the same price, so either may be open or close.
- Volume and notional (price x size, exact at scale 16) are summed; vwap = notional / volume
  rounded half-even to scale 8 (`fixedpoint.div_round`).
- Watermark, per symbol = max ts_event seen for the symbol - `allowed_lateness_us` (5 s).
  A bucket is emitted as final once the watermark reaches its end.
- A trade for an already emitted bucket re-emits that bucket corrected (a higher version,
  below). A trade for a bucket never seen whose end is already behind the watermark is
  emitted at once. Emitted buckets are kept while their end is after
  watermark - `retention_us` (1 h), which bounds memory to retention / width buckets per
  symbol and width; a trade with ts_event < watermark - retention is rejected `too_late`.
  The watermark is read before the trade is applied, and both bounds are event time, so a
  replay classifies every trade as the first run did.
- Wall clock (`close_idle_inplace`) only closes buckets early: a symbol with no arrival for
  `idle_timeout_us` of wall time has its open buckets emitted once their end plus the allowed
  lateness is behind the wall clock. Any trade that later lands in such a bucket re-emits it
  with a higher version, so the last version of every candle is the same with or without
  idle closing; only the number of emissions differs.
- Versions: a candle's `version` is its `trade_count`, a function of its content, not of how
  often it was emitted. Within a run a bucket only gains trades, so every correction has a
  strictly higher version and equal versions mean identical content; replays give identical
  versions, and roll-ups (sum of the parts' versions) carry a direct build's. The stores add
  the writer's base, so a later run's rewrite wins even with fewer trades
  (`sinks.versions.candle_version_base`, docs/market-core.md).
- Empty buckets are never emitted. `flush_inplace` emits every open bucket (end of a batch input).
- Trade conditions (`tapeflow.core.market.conditions`): the caller passes each trade's effect.
  A `REGULAR` print is folded as above; a `VOLUME_ONLY` print (odd lot, out of sequence,
  average price...) adds to volume, notional and trade count and never sets open, high, low or
  close. A bucket whose prints are all volume-only has no prices: open, high, low and close are
  None (NULL in the store), volume and vwap are set. `NO_EFFECT` prints are not candle input
  (`tapeflow.core.market.symbol_step` does not pass them).

The candle builder does not judge prices (that is the tick filter's job, run first: a trade
with a far-future timestamp would otherwise push the watermark on and make good trades
too late). It refuses only non-positive prices and sizes, which would break vwap.

State: `CandleState` is owned by one partition of symbols and advanced in place by the
`*_inplace` functions, which return it: copying bucket maps on every trade would cost more than
the fold. It pickles, and equal inputs give equal outputs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.market.conditions import PRICE_BIT, REGULAR
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
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

# Accumulator layout: a list, mutated in place (cheapest per-trade update in CPython). The open
# and close trades are kept whole for the (seq, venue, price) tie-break; their timestamps are
# copied out because list indexing is much cheaper than NamedTuple attribute reads.
_OPEN_TS, _OPEN, _HIGH, _LOW, _CLOSE_TS, _CLOSE, _VOLUME, _NOTIONAL, _COUNT = range(9)
_NOTHING = -(2**64)
_NEVER = 2**64
_EMPTY: tuple[Candle, ...] = ()
_new_tuple = tuple.__new__


class _Width:
    """Buckets of one width for one symbol."""

    __slots__ = ("cur", "cur_bucket", "emitted", "heap", "next_end", "open", "symbol", "width")

    def __init__(self, symbol: str, width: int) -> None:
        self.symbol = symbol
        self.width = width
        self.cur_bucket = _NOTHING
        self.cur: list[object] = []
        self.open: dict[int, list[object]] = {}
        self.next_end = _NEVER
        self.emitted: dict[int, list[object]] = {}
        self.heap: list[int] = []

    def state(self) -> tuple[object, ...]:
        return (self.width, self.open, self.emitted, sorted(self.heap), self.next_end)


class _Symbol:
    __slots__ = ("arrival", "max_ts", "widths")

    def __init__(self, symbol: str, widths: tuple[int, ...]) -> None:
        self.max_ts = _NOTHING
        self.arrival: int | None = None
        self.widths = tuple(_Width(symbol, w) for w in widths)


_COUNTERS = (
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
        self.symbols: dict[str, _Symbol] = {}
        # Plain dict, keys present: the fast subscript path (see tick_filter.FilterState).
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)

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


def _candle(symbol: str, bucket: int, width: int, acc: list[object]) -> Candle:
    first: Trade | None = acc[_OPEN]  # type: ignore[assignment]
    last: Trade = acc[_CLOSE]  # type: ignore[assignment]
    volume: int = acc[_VOLUME]  # type: ignore[assignment]
    notional: int = acc[_NOTIONAL]  # type: ignore[assignment]
    if first is None:  # only volume-only prints: no prices
        return _new_tuple(
            Candle,
            (symbol, bucket, width, None, None, None, None, volume, notional,
             div_round(notional, volume), acc[_COUNT], acc[_COUNT]),
        )
    # tuple.__new__ skips the NamedTuple's Python-level __new__: about 2.5x cheaper, and the
    # 1 s width emits about one candle per trade on a thin tape.
    return _new_tuple(
        Candle,
        (
            symbol,
            bucket,
            width,
            first.price,
            acc[_HIGH],
            acc[_LOW],
            last.price,
            volume,
            notional,
            div_round(notional, volume),
            acc[_COUNT],
            acc[_COUNT],  # version = trade_count (module docstring, "Versions")
        ),
    )


def _tie(acc: list[object], trade: Trade) -> None:
    """Same ts_event as the open or the close: order by (seq, venue, price)."""
    ts = trade.ts_event
    key = (trade.seq, trade.venue, trade.price)
    if ts == acc[_CLOSE_TS]:
        last: Trade = acc[_CLOSE]  # type: ignore[assignment]
        if key >= (last.seq, last.venue, last.price):
            acc[_CLOSE] = trade
    if ts == acc[_OPEN_TS]:
        first: Trade = acc[_OPEN]  # type: ignore[assignment]
        if key < (first.seq, first.venue, first.price):
            acc[_OPEN] = trade


def _update(acc: list[object], trade: Trade, effect: int = REGULAR) -> None:
    """Fold one trade into an accumulator (the slow-path twin of the inline code in
    add_trade_inplace)."""
    ts = trade.ts_event
    price = trade.price
    acc[_VOLUME] += trade.size  # type: ignore[operator]
    acc[_NOTIONAL] += price * trade.size  # type: ignore[operator]
    acc[_COUNT] += 1  # type: ignore[operator]
    if not effect & PRICE_BIT:
        return
    if acc[_OPEN] is None:  # the bucket's first print that sets prices
        acc[_OPEN_TS] = acc[_CLOSE_TS] = ts
        acc[_OPEN] = acc[_CLOSE] = trade
        acc[_HIGH] = acc[_LOW] = price
        return
    acc[_HIGH] = max(acc[_HIGH], price)  # type: ignore[call-overload]
    acc[_LOW] = min(acc[_LOW], price)  # type: ignore[call-overload]
    if ts > acc[_CLOSE_TS]:  # type: ignore[operator]
        acc[_CLOSE_TS] = ts
        acc[_CLOSE] = trade
    elif ts < acc[_OPEN_TS]:  # type: ignore[operator]
        acc[_OPEN_TS] = ts
        acc[_OPEN] = trade
    elif ts == acc[_CLOSE_TS] or ts == acc[_OPEN_TS]:
        _tie(acc, trade)


def _new_acc(trade: Trade, effect: int = REGULAR) -> list[object]:
    _symbol, _venue, ts, _seq, price, size, _trade_id, _conditions = trade
    if not effect & PRICE_BIT:
        return [_NEVER, None, None, None, _NOTHING, None, size, price * size, 1]
    return [ts, trade, price, price, ts, trade, size, price * size, 1]


def _retain(w: _Width, bucket: int, acc: list[object]) -> None:
    w.emitted[bucket] = acc
    heapq.heappush(w.heap, bucket)


def _prune(w: _Width, floor: int) -> None:
    """Forget emitted buckets that end at or before `floor` (= watermark - retention)."""
    heap = w.heap
    width = w.width
    emitted = w.emitted
    while heap and heap[0] + width <= floor:
        del emitted[heapq.heappop(heap)]


def _close(w: _Width, until: int, counters: dict[str, int], key: str) -> list[Candle]:
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
        out.append(_candle(symbol, bucket, width, acc))
        emitted[bucket] = acc
        heapq.heappush(heap, bucket)
        if bucket == w.cur_bucket:
            w.cur_bucket = _NOTHING
    counters[key] += len(due)
    w.next_end = min(opened) + width if opened else _NEVER
    return out


def _place(  # noqa: PLR0917 - the fold's slow path, called from one place
    w: _Width, trade: Trade, bucket: int, watermark: int, counters: dict[str, int],
    effect: int,
) -> Candle | None:
    """A trade outside the bucket it is most likely to hit (or not a plain regular print):
    find or create its bucket."""
    if bucket == w.cur_bucket:
        _update(w.cur, trade, effect)
        return None
    acc = w.open.get(bucket)
    if acc is not None:
        _update(acc, trade, effect)
        w.cur_bucket = bucket
        w.cur = acc
        return None
    acc = w.emitted.get(bucket)
    if acc is not None:
        _update(acc, trade, effect)  # one more trade: trade_count, hence version, grows
        counters["corrections"] += 1
        return _candle(w.symbol, bucket, w.width, acc)
    acc = _new_acc(trade, effect)
    end = bucket + w.width
    if end <= watermark:
        _retain(w, bucket, acc)
        counters["late_new"] += 1
        return _candle(w.symbol, bucket, w.width, acc)
    w.open[bucket] = acc
    w.next_end = min(w.next_end, end)
    w.cur_bucket = bucket
    w.cur = acc
    return None


def add_trade_inplace(
    state: CandleState,
    trade: Trade,
    now_us: int | None = None,
    config: CandleConfig = DEFAULT_CANDLE_CONFIG,
    effect: int = REGULAR,
) -> tuple[CandleState, tuple[Candle, ...], Rejection | None]:
    """Fold one clean trade: (state, candles emitted or corrected by it, rejection or None).
    Advances `state` in place (module doc, "State").

    `now_us` is the wall-clock arrival time, used only by `close_idle_inplace`; None in a batch.
    `effect` is the trade's condition effect (`REGULAR` or `VOLUME_ONLY`; module docstring).
    """
    # One unpack instead of named-field reads (see tick_filter.filter_trade).
    symbol, _venue, ts, _seq, price, size, _trade_id, _conditions = trade
    if price <= 0 or size <= 0:
        state.counters["non_positive"] += 1
        reason = RejectReason.NON_POSITIVE_PRICE if price <= 0 else RejectReason.NON_POSITIVE_SIZE
        return state, _EMPTY, Rejection(TickKind.TRADE, reason, trade, "candle input")
    sym = state.symbols.get(symbol)
    if sym is None:
        sym = state.symbols[symbol] = _Symbol(symbol, config.widths_us)
    lateness = config.allowed_lateness_us
    top = sym.max_ts
    advanced = ts > top
    if advanced:
        sym.max_ts = top = ts
    elif ts < top - lateness - config.retention_us:
        state.counters["too_late"] += 1
        detail = f"{top - lateness - ts} us behind the watermark"
        return state, _EMPTY, Rejection(TickKind.TRADE, RejectReason.TOO_LATE, trade, detail)
    if now_us is not None:
        sym.arrival = now_us
    out: list[Candle] | None = None
    watermark = top - lateness
    plain = effect == REGULAR
    for w in sym.widths:
        if plain and ts - ts % w.width == w.cur_bucket and w.cur[_OPEN] is not None:
            acc = w.cur
            if price > acc[_HIGH]:  # type: ignore[operator]
                acc[_HIGH] = price
            elif price < acc[_LOW]:  # type: ignore[operator]
                acc[_LOW] = price
            if ts > acc[_CLOSE_TS]:  # type: ignore[operator]
                acc[_CLOSE_TS] = ts
                acc[_CLOSE] = trade
            elif ts < acc[_OPEN_TS]:  # type: ignore[operator]
                acc[_OPEN_TS] = ts
                acc[_OPEN] = trade
            elif ts == acc[_CLOSE_TS] or ts == acc[_OPEN_TS]:
                _tie(acc, trade)
            acc[_VOLUME] += size  # type: ignore[operator]
            acc[_NOTIONAL] += price * size  # type: ignore[operator]
            acc[_COUNT] += 1  # type: ignore[operator]
        else:
            candle = _place(w, trade, ts - ts % w.width, watermark, state.counters, effect)
            if candle is not None:
                if out is None:
                    out = []
                out.append(candle)
        if advanced and watermark >= w.next_end:
            closed = _close(w, watermark, state.counters, "emitted")
            out = closed if out is None else out + closed
            _prune(w, watermark - config.retention_us)
    if out:
        return state, tuple(out), None
    return state, _EMPTY, None


def close_idle_inplace(
    state: CandleState, now_us: int, config: CandleConfig = DEFAULT_CANDLE_CONFIG
) -> tuple[CandleState, tuple[Candle, ...]]:
    """Wall-clock tick: close open buckets of symbols that have gone quiet; advances `state` in
    place.

    A symbol is idle when no trade arrived for `idle_timeout_us` (or it never recorded an
    arrival time); its buckets whose end + allowed lateness <= now_us are emitted. The
    watermark does not move, so nothing becomes too late because of the wall clock.
    """
    out: list[Candle] = []
    horizon = now_us - config.allowed_lateness_us
    for sym in state.symbols.values():
        if sym.arrival is not None and now_us - sym.arrival < config.idle_timeout_us:
            continue
        for w in sym.widths:
            if horizon >= w.next_end:
                out.extend(_close(w, horizon, state.counters, "idle_closes"))
    return state, tuple(out)


def flush_inplace(state: CandleState) -> tuple[CandleState, tuple[Candle, ...]]:
    """End of input (a batch): emit every open bucket; advances `state` in place. Retained
    buckets stay correctable."""
    out: list[Candle] = []
    for sym in state.symbols.values():
        for w in sym.widths:
            if w.open:
                out.extend(_close(w, _NEVER, state.counters, "emitted"))
    return state, tuple(out)
