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

from tapeflow.core.market import candle_buckets as buckets
from tapeflow.core.market.candle_buckets import (
    DEFAULT_CANDLE_CONFIG,
    HOUR_US,
    MINUTE_US,
    SECOND_US,
    Candle,
    CandleConfig,
    CandleState,
)
from tapeflow.core.market.conditions import REGULAR
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
from tapeflow.core.models import Trade

# The accumulator layout and the bucket helpers, under the short names the fold's inlined
# per-trade code reads (`tapeflow.core.market.candle_buckets` documents them).
_OPEN_TS, _OPEN, _HIGH, _LOW = buckets.OPEN_TS, buckets.OPEN, buckets.HIGH, buckets.LOW
_CLOSE_TS, _CLOSE, _VOLUME = buckets.CLOSE_TS, buckets.CLOSE, buckets.VOLUME
_NOTIONAL, _COUNT = buckets.NOTIONAL, buckets.COUNT
_NEVER, _EMPTY = buckets.NEVER, buckets.EMPTY
_Symbol = buckets.SymbolBuckets
_Width = buckets.Width
_candle = buckets.candle_of
_close = buckets.close_due
_new_acc = buckets.new_acc
_prune = buckets.prune
_retain = buckets.retain
_tie = buckets.tie
_update = buckets.update



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


__all__ = [
    "DEFAULT_CANDLE_CONFIG",
    "HOUR_US",
    "MINUTE_US",
    "SECOND_US",
    "Candle",
    "CandleConfig",
    "CandleState",
    "add_trade_inplace",
    "close_idle_inplace",
    "flush_inplace",
]
