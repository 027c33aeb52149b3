"""One symbol's ticks through the stream's per-symbol step: the sequential part of the backfill.

The market flow's partition step (`flows.market_logic.PartitionLogic`) splits each batch into
its symbols' arrivals and drives each symbol's `SymbolState` with
`tapeflow.core.market.symbol_step.on_arrivals_inplace`, then `on_end_inplace` at the end of a
finite input. The backfill calls exactly those two functions on each symbol's ticks read from
the files, so the merge of trades and quotes, the tick filter, the candle builder (its
`too_late` rule and every candle version) and the condition effects are the stream's own code,
not a re-implementation: stream/backfill parity holds by construction
(tests/integration/test_backfill_parity.py checks it end to end).

**Order.** The stream keeps each kind in arrival order (its partition's offset order, i.e. the
file's row order here) and merges the two kinds by merge key, a quote first on equal keys
(`symbol_step`). Its result depends only on the two sequences as long as the merge never
releases a head early on its `merge_max_wait_us` bound, which a batch run (`--batch`, 1 h)
guarantees in practice. The backfill has both sequences whole, so it runs the step with an
unbounded wait (`UNBOUNDED_WAIT_US`) and hands it the symbol's trades and then its quotes: every
trade waits for the quotes, and the step's own merge releases them in the two-pointer merge
order P of the two sequences.

**Verdicts per row.** The step emits exactly one of (the tick itself, its `Rejection`) per tick,
and releases each kind in arrival order, so walking its outputs in order gives each row's
verdict without looking anything up (`SymbolResult`).

The state is per symbol, so symbols are independent and any symbol may be judged in any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat

from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection, SequenceGap, TickKind
from tapeflow.core.market.symbol_step import (
    DEFAULT_MARKET_CONFIG,
    Arrival,
    MarketConfig,
    Output,
    SymbolState,
    on_arrivals_inplace,
    on_end_inplace,
)
from tapeflow.core.models import Quote, Trade

UNBOUNDED_WAIT_US = 2**64
"""A merge wait no event-time span reaches (a Python int: no overflow)."""
NO_ORIGIN = ("", -1, -1)
_new_tuple = tuple.__new__


def batch_config(config: MarketConfig) -> MarketConfig:
    """`config` for a whole input at once: the merge waits for the other kind however far
    ahead one kind runs (module docstring, "Order")."""
    return replace(config, merge_max_wait_us=UNBOUNDED_WAIT_US)


@dataclass
class SymbolResult:
    """The step's outputs on one symbol's ticks, by row."""

    trade_ok: list[bool] = field(default_factory=list)
    """Per trade, in input order: a clean trade (accepted by the filter and the candle
    builder)."""
    quote_ok: list[bool] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    """Every version emitted, in emission order (`candle_batch.final_candles` keeps the last)."""
    gaps: int = 0


def _arrivals(ticks: Sequence[Trade | Quote],
              recv: Sequence[int | None] | None) -> list[Arrival]:
    times = repeat(None, len(ticks)) if recv is None else recv
    return list(map(_new_tuple, repeat(Arrival),
                    zip(ticks, times, repeat(NO_ORIGIN, len(ticks)), strict=True)))


def step_symbol(
    trades: Sequence[Trade],
    quotes: Sequence[Quote],
    trade_recv: Sequence[int | None] | None = None,
    quote_recv: Sequence[int | None] | None = None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
) -> SymbolResult:
    """One symbol's trades and quotes (each in arrival order) through the stream's step, with
    `batch_config(config)`; the verdict of every row, the rejections, candles and gaps."""
    config = batch_config(config)
    state, outputs = on_arrivals_inplace(SymbolState(), _arrivals(trades, trade_recv), None,
                                         config)
    state, outputs = on_arrivals_inplace(state, _arrivals(quotes, quote_recv), None, config,
                                         out=outputs)
    outputs.extend(on_end_inplace(state, config)[1])
    return _by_row(outputs, len(trades), len(quotes))


def _by_row(outputs: list[Output], trades: int, quotes: int) -> SymbolResult:
    result = SymbolResult([False] * trades, [False] * quotes)
    trade_ok, quote_ok = result.trade_ok, result.quote_ok
    rejections, candles = result.rejections, result.candles
    t = q = gaps = 0
    for item in outputs:
        kind = type(item)
        if kind is Trade:
            trade_ok[t] = True
            t += 1
        elif kind is Quote:
            quote_ok[q] = True
            q += 1
        elif kind is Candle:
            candles.append(item)  # type: ignore[arg-type]
        elif kind is Rejection:
            rejections.append(item)  # type: ignore[arg-type]
            if item.kind is TickKind.TRADE:  # type: ignore[union-attr]
                t += 1
            else:
                q += 1
        elif kind is SequenceGap:
            gaps += 1
        # MarkTrade: marks feed live prices to the trading flow; history has no use for them.
    if t != trades or q != quotes:  # one verdict per tick: anything else is a bug, not data
        raise AssertionError(f"the step judged {t} of {trades} trades, {q} of {quotes} quotes")
    result.gaps = gaps
    return result
