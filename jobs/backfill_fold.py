"""One symbol's ticks through the stream's own core step: the sequential part of the backfill.

The market flow keys the tape by symbol and drives `tapeflow.market_step` (merge trades and
quotes, tick filter, candles) with `on_arrival` per tick and `on_end` at the end of a finite
input. The backfill calls the same two functions, so the verdicts and candles are the stream's
by construction; what remains to get right is the order of the calls.

**Order.** The stream keeps each kind in arrival order (its Kafka partition's offset order, i.e.
the file's row order here) and merges the two kinds by merge key (`ts_event`, capped at the
receive time when there is one), a quote first on equal keys; `tapeflow.market_step` shows that
the result depends only on the two sequences as long as the reader never runs more than
`merge_max_wait_us` ahead on one kind. The backfill feeds the arrivals in exactly that merged
order P (a two-pointer merge of the two sequences, below). Fed in order P, the step's queues
only ever hold items that come next in P, so each release, whether forced by the merge wait or
by the other kind, emits P: the step's output is P's verdicts. Hence `merge_max_wait_us=0` is
used: it releases each tick at once (short queues, less work) without changing any verdict.

No wall clock: `wall_us=None` (the wall clock only closes idle candle buckets early, and the
final version of every candle does not depend on it: `tapeflow.candles`, "Versions").
Candles: the step emits every version; only the highest of each (width, bucket) is kept, which
is the row a ReplacingMergeTree(version) keeps from the stream's emissions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tapeflow.candles import Candle
from tapeflow.market_step import (
    DEFAULT_MARKET_CONFIG,
    Arrival,
    MarketConfig,
    SymbolMarket,
    on_arrival,
    on_end,
)
from tapeflow.models import Quote, Trade
from tapeflow.rejections import Rejection, SequenceGap

_new_tuple = tuple.__new__


@dataclass
class SymbolResult:
    """What one symbol's fold produced, split by destination table."""

    trades: list[Trade] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    candles: dict[tuple[int, int], Candle] = field(default_factory=dict)
    """Final candle per (width_us, bucket)."""
    gaps: int = 0


def _keys(ticks: Sequence[Trade | Quote], recv: Sequence[int | None] | None) -> list[int]:
    """The stream's merge key per tick (`tapeflow.market_step._merge_key`)."""
    if recv is None:
        return [t[2] for t in ticks]
    return [ts if r is None or ts <= r else r
            for ts, r in zip((t[2] for t in ticks), recv, strict=True)]


def merged_order(trade_keys: Sequence[int], quote_keys: Sequence[int]) -> list[int]:
    """The merge P as indices: i >= 0 is trade i, ~i (< 0) is quote i. Each kind keeps its
    order; the smaller head goes first, a quote on equal keys."""
    out: list[int] = []
    append = out.append
    i = j = 0
    nt, nq = len(trade_keys), len(quote_keys)
    while i < nt and j < nq:
        if quote_keys[j] <= trade_keys[i]:
            append(~j)
            j += 1
        else:
            append(i)
            i += 1
    out.extend(range(i, nt))
    out.extend(~k for k in range(j, nq))
    return out


def fold_symbol(
    trades: Sequence[Trade],
    quotes: Sequence[Quote],
    trade_recv: Sequence[int | None] | None = None,
    quote_recv: Sequence[int | None] | None = None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
) -> SymbolResult:
    """Run one symbol's trades and quotes (each in arrival order) through the market step."""
    config = replace(config, merge_max_wait_us=0)
    t_recv = trade_recv if trade_recv is not None else [None] * len(trades)
    q_recv = quote_recv if quote_recv is not None else [None] * len(quotes)
    order = merged_order(_keys(trades, trade_recv), _keys(quotes, quote_recv))
    state = SymbolMarket()
    result = SymbolResult()
    outputs: list[object] = []
    extend = outputs.extend
    for k in order:
        if k >= 0:
            arrival = _new_tuple(Arrival, (trades[k], t_recv[k], ("", -1, -1)))
        else:
            arrival = _new_tuple(Arrival, (quotes[~k], q_recv[~k], ("", -1, -1)))
        state, out = on_arrival(state, arrival, None, config)
        if out:
            extend(out)
    state, out = on_end(state, config)
    extend(out)
    _split(outputs, result)
    return result


def _split(outputs: list[object], result: SymbolResult) -> None:
    trades = result.trades
    candles = result.candles
    for o in outputs:
        kind = type(o)
        if kind is Trade:
            trades.append(o)  # type: ignore[arg-type]
        elif kind is Candle:
            c: Candle = o  # type: ignore[assignment]
            key = (c.width_us, c.bucket)
            prev = candles.get(key)
            if prev is None or c.version >= prev.version:
                candles[key] = c
        elif kind is Quote:
            result.quotes.append(o)  # type: ignore[arg-type]
        elif kind is Rejection:
            result.rejections.append(o)  # type: ignore[arg-type]
        elif kind is SequenceGap:
            result.gaps += 1
        # Marks feed the trading flow's live prices; a backfill of history has no consumer.
