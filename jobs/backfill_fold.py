"""One symbol's ticks through the stream's tick filter: the sequential part of the backfill.

The market flow keys the tape by symbol and drives `tapeflow.core.market.symbol_step`: it merges the
symbol's trades and quotes, then calls the tick filter (`filter_trade_inplace` /
`filter_quote_inplace`) on each tick and the candle builder on each accepted trade. The filter is
causal and sequential (each verdict depends on the ticks before it), so the backfill calls the same
filter functions, tick by tick, in the same order; the candles are an aggregate of the result
(`jobs.backfill_candles`, which proves it equal to the builder's last versions).

**Order.** The stream keeps each kind in arrival order (its Kafka partition's offset order, i.e.
the file's row order here) and merges the two kinds by merge key (`ts_event`, capped at the
receive time when there is one), a quote first on equal keys. `tapeflow.core.market.symbol_step`
explains why its output depends only on the two sequences (as long as its reader never runs more
than `merge_max_wait_us` ahead on one kind, which a batch run guarantees with its 1 h wait): it is
the two-pointer merge P of the two sequences, because the step only releases a held head when the
other kind's head is larger or when nothing of the other kind can come before it. The backfill
has both sequences whole, so it computes P directly (`merged_order`) and filters in that order.

The filter state is per (venue, symbol), so symbols are independent and any symbol may be
judged in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tapeflow.core.market.conditions import REGULAR
from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.tick_filter import filter_quote_inplace, filter_trade_inplace
from tapeflow.core.models import Quote, Trade


@dataclass
class SymbolResult:
    """The tick filter's verdicts on one symbol's ticks."""

    trade_ok: list[bool] = field(default_factory=list)
    """Per trade, in input order: accepted by the filter."""
    quote_ok: list[bool] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    gaps: int = 0
    trade_effect: list[int] = field(default_factory=list)
    """Per trade, in input order: its condition effect (`tapeflow.core.market.conditions`)."""


def _keys(ticks: Sequence[Trade | Quote], recv: Sequence[int | None] | None) -> list[int]:
    """The stream's merge key per tick (`tapeflow.core.market.symbol_step._merge_key`)."""
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


def filter_symbol(
    trades: Sequence[Trade],
    quotes: Sequence[Quote],
    trade_recv: Sequence[int | None] | None = None,
    quote_recv: Sequence[int | None] | None = None,
    config: FilterConfig = DEFAULT_FILTER_CONFIG,
) -> SymbolResult:
    """Judge one symbol's trades and quotes (each in arrival order) in the merge order P."""
    t_recv = trade_recv if trade_recv is not None else [None] * len(trades)
    q_recv = quote_recv if quote_recv is not None else [None] * len(quotes)
    order = merged_order(_keys(trades, trade_recv), _keys(quotes, quote_recv))
    state = FilterState()
    trade_ok = [False] * len(trades)
    quote_ok = [False] * len(quotes)
    rejections: list[Rejection] = []
    gaps = 0
    for k in order:
        if k >= 0:
            state, rejection, gap = filter_trade_inplace(state, trades[k], t_recv[k], config)
            if rejection is None:
                trade_ok[k] = True
        else:
            state, rejection, gap = filter_quote_inplace(state, quotes[~k], q_recv[~k], config)
            if rejection is None:
                quote_ok[~k] = True
        if rejection is not None:
            rejections.append(rejection)
        if gap is not None:
            gaps += 1
    rules = config.conditions
    effects = [rules.effect(t.venue, t.conditions) if t.conditions else REGULAR for t in trades]
    return SymbolResult(trade_ok, quote_ok, rejections, gaps, effects)
