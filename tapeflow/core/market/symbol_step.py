"""One symbol's market pipeline as a pure step: merge trades and quotes, filter, candles, marks.

The market dataflow keys the tape by symbol and drives one `SymbolState` per key with these
functions; a backfill can drive the same ones. Nothing here reads a clock or does I/O: the
receive time (`recv_us`, the Kafka message timestamp in the stream) and the wall clock
(`wall_us`, only for closing idle candles and releasing a quiet merge) are arguments.

**Deterministic interleaving of trades and quotes.** The tick filter's outside-quote rule reads
the symbol's quotes, so the verdicts depend on how the two topics are interleaved
(docs/market-core.md). Kafka delivers each topic's partition in offset order but says nothing
about the interleaving of two topics, and a reader that is catching up reads them at different
speeds. So each symbol's trades and quotes are *merged*, not taken in arrival order:

- each kind keeps its own arrival order (duplicates and out-of-order ticks stay as the venue
  sent them, which the sequence rule needs);
- between the two, the head with the smaller merge key goes first, a quote before a trade on
  equal keys (a trade is then judged against the quote of its own instant). The merge key is
  `ts_event`, capped at the receive time when one is known, so a bogus future timestamp cannot
  hold the other kind back;
- a head waits until the other kind has a head to compare with. It is released without one
  when the symbol's newest merge key is `merge_max_wait_us` (event time) past it, when the wall
  clock finds the symbol quiet, or at the end of the input.

The result depends only on the two per-symbol sequences, so a replay (or a backfill merging the
same two sequences) gives the same interleaving and the same verdicts, as long as the reader
never runs more than `merge_max_wait_us` of event time ahead on one topic than on the other
for a symbol and the wall-clock release does not fire (it only fires for a quiet symbol). Memory:
only the leading kind is held, at most `merge_max_wait_us` of its ticks per symbol.

**Trade conditions.** Each clean trade's effect comes from the venue's condition table
(`FilterConfig.conditions`, `tapeflow.core.market.conditions`): a `NO_EFFECT` print (an official
open or close report) is a clean trade and nothing else; a `VOLUME_ONLY` print (odd lot, out of
sequence, average price) is folded into the candles' volume only and is never a mark.

**Marks.** The mark of a symbol is its last clean trade that sets prices: accepted by the tick
filter *and* by the candle builder (a `too_late` trade is a rejected tick), and `REGULAR` by its
conditions. A mark never moves back in event time
(a late trade corrects candles but does not re-mark). Marks are throttled in event time: at most
one per `mark_interval_us` per symbol; the newest unsent mark goes out when the interval has
passed at the next trade, when the wall clock finds the symbol quiet, or at the end.

State is advanced in place and returned, like the filter's and the candles' (owned by one key).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from tapeflow.core.market.candles import (
    DEFAULT_CANDLE_CONFIG,
    Candle,
    CandleConfig,
    CandleState,
    add_trade_inplace,
    close_idle_inplace,
    flush_inplace,
)
from tapeflow.core.market.conditions import NO_EFFECT, PRICE_BIT, REGULAR
from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import Rejection, SequenceGap
from tapeflow.core.market.tick_filter import filter_quote_inplace, filter_trade_inplace
from tapeflow.core.models import Quote, Trade

SECOND_US = 1_000_000


class MarkTrade(NamedTuple):
    """The price to mark a symbol's positions with: its last clean trade."""

    trade: Trade

    @property
    def symbol(self) -> str:
        return self.trade.symbol


class Arrival(NamedTuple):
    """One decoded tick as it arrived: the tick, its receive time (None: unknown), and where it
    came from (kept for error reports; not used by any rule)."""

    tick: Trade | Quote
    recv_us: int | None
    origin: tuple[str, int, int] = ("", -1, -1)
    """(topic, partition, offset)."""


Output = Trade | Quote | Rejection | Candle | SequenceGap | MarkTrade
"""What a step emits: clean ticks, rejections, candles (all versions), gaps, marks."""


@dataclass(frozen=True, slots=True)
class MarketConfig:
    filter: FilterConfig = DEFAULT_FILTER_CONFIG
    candles: CandleConfig = DEFAULT_CANDLE_CONFIG
    mark_interval_us: int = SECOND_US
    """At most one mark per symbol per this much event time (0: every clean trade)."""
    merge_max_wait_us: int = 30 * SECOND_US
    """How far (event time) one kind may run ahead of the other before its head is released."""
    quiet_us: int = 5 * SECOND_US
    """Wall time without arrivals after which a symbol's merge and pending mark are released."""

    def __post_init__(self) -> None:
        if self.mark_interval_us < 0 or self.merge_max_wait_us < 0 or self.quiet_us < 0:
            raise ValueError("mark interval, merge wait and quiet time must not be negative")


DEFAULT_MARKET_CONFIG = MarketConfig()

_NOTHING = -(2**63)


@dataclass
class SymbolState:
    """Everything one symbol's pipeline remembers. Pickles (recovery snapshots)."""

    trades: deque[tuple[int, Arrival]] = field(default_factory=deque)
    quotes: deque[tuple[int, Arrival]] = field(default_factory=deque)
    newest_key: int = _NOTHING
    filter: FilterState = field(default_factory=FilterState)
    candles: CandleState = field(default_factory=CandleState)
    mark_ts: int = _NOTHING
    """Event time of the newest clean trade (the mark, sent or not)."""
    mark_sent_ts: int = _NOTHING
    pending_mark: Trade | None = None
    last_arrival_wall: int | None = None


def _merge_key(arrival: Arrival) -> int:
    ts = arrival.tick.ts_event
    recv = arrival.recv_us
    return ts if recv is None or ts <= recv else recv


def on_arrival_inplace(
    state: SymbolState,
    arrival: Arrival,
    wall_us: int | None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
) -> tuple[SymbolState, list[Output]]:
    """Take one tick of the symbol; emit what the merge releases, filtered and folded.
    Advances `state` in place."""
    key = _merge_key(arrival)
    (state.trades if isinstance(arrival.tick, Trade) else state.quotes).append((key, arrival))
    state.newest_key = max(state.newest_key, key)
    if wall_us is not None:
        state.last_arrival_wall = wall_us
    out: list[Output] = []
    _release(state, state.newest_key - config.merge_max_wait_us, config, out)
    return state, out


class ArrivalError(Exception):
    """`on_arrivals_inplace` could not take the arrival at `index` (the cause is chained):
    the arrivals before it are taken and their outputs appended; the caller decides what to do
    with that one and may go on from `index + 1`."""

    def __init__(self, index: int) -> None:
        super().__init__(f"arrival {index} not taken")
        self.index = index


def on_arrivals_inplace(
    state: SymbolState,
    arrivals: Sequence[Arrival],
    wall_us: int | None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
    *,
    out: list[Output] | None = None,
    start: int = 0,
) -> tuple[SymbolState, list[Output]]:
    """Take a symbol's `arrivals[start:]` in order, appending what they release to `out`
    (a new list when None): exactly the outputs, in the same order, of `on_arrival_inplace`
    on each in turn. This is the batch form the market flow's partition step and the backfill
    both call; the per-tick one stays the reference (tests/unit/test_symbol_step.py compares
    them). Raises `ArrivalError` for an arrival that raised, its partial outputs removed."""
    if out is None:
        out = []
    trades, quotes = state.trades, state.quotes
    wait = config.merge_max_wait_us
    for index in range(start, len(arrivals)):
        arrival = arrivals[index]
        mark = len(out)
        try:
            tick, recv = arrival[0], arrival[1]
            ts = tick.ts_event
            key = ts if recv is None or ts <= recv else recv
            (trades if isinstance(tick, Trade) else quotes).append((key, arrival))
            newest = state.newest_key
            if key > newest:
                state.newest_key = newest = key
            if wall_us is not None:
                state.last_arrival_wall = wall_us
            # `_release`'s first test, inlined: a lone head younger than the floor waits.
            if (trades and quotes) or (trades or quotes)[0][0] <= newest - wait:
                _release(state, newest - wait, config, out)
        except Exception as exc:
            del out[mark:]
            raise ArrivalError(index) from exc
    return state, out


def on_wall_clock_inplace(
    state: SymbolState, wall_us: int, config: MarketConfig = DEFAULT_MARKET_CONFIG,
    quiet: bool | None = None,
) -> tuple[SymbolState, list[Output]]:
    """Periodic wall-clock call, advancing `state` in place: a quiet symbol releases its merge
    and its pending mark, and its idle candle buckets are closed
    (`tapeflow.core.market.candles.close_idle_inplace`).

    `quiet` None: quiet when no tick arrived for `config.quiet_us`; a caller that knows better
    (a stream that can tell its own stalls from a quiet feed) passes the verdict."""
    out: list[Output] = []
    last = state.last_arrival_wall
    if quiet is None:
        quiet = last is None or wall_us - last >= config.quiet_us
    if quiet:
        _release(state, None, config, out)
        _send_pending_mark(state, out)
    state.candles, candles = close_idle_inplace(state.candles, wall_us, config.candles)
    out.extend(candles)
    return state, out


def on_end_inplace(
    state: SymbolState, config: MarketConfig = DEFAULT_MARKET_CONFIG
) -> tuple[SymbolState, list[Output]]:
    """End of a finite input: release everything, emit open candles and the pending mark;
    advances `state` in place."""
    out: list[Output] = []
    _release(state, None, config, out)
    state.candles, candles = flush_inplace(state.candles)
    out.extend(candles)
    _send_pending_mark(state, out)
    return state, out


def _release(
    state: SymbolState,
    floor: int | None,
    config: MarketConfig,
    out: list[Output],
) -> None:
    """Pop merged heads while the order is decided; `floor` None releases everything."""
    trades = state.trades
    quotes = state.quotes
    while trades or quotes:
        if trades and quotes:
            take_quote = quotes[0][0] <= trades[0][0]
        elif floor is None:
            take_quote = not trades
        else:
            head = trades[0] if trades else quotes[0]
            if head[0] > floor:
                return
            take_quote = not trades
        if take_quote:
            _quote(state, quotes.popleft()[1], config, out)
        else:
            _trade(state, trades.popleft()[1], config, out)


def _quote(state: SymbolState, arrival: Arrival, config: MarketConfig, out: list[Output]) -> None:
    quote = arrival.tick
    assert isinstance(quote, Quote)
    state.filter, rejection, gap = filter_quote_inplace(state.filter, quote, arrival.recv_us,
                                                config.filter)
    if gap is not None:
        out.append(gap)
    out.append(quote if rejection is None else rejection)


def _trade(
    state: SymbolState,
    arrival: Arrival,
    config: MarketConfig,
    out: list[Output],
) -> None:
    trade = arrival.tick
    assert isinstance(trade, Trade)
    state.filter, rejection, gap = filter_trade_inplace(state.filter, trade, arrival.recv_us,
                                                config.filter)
    if gap is not None:
        out.append(gap)
    if rejection is not None:
        out.append(rejection)
        return
    conditions = trade.conditions
    effect = config.filter.conditions.effect(trade.venue, conditions) if conditions else REGULAR
    if effect == NO_EFFECT:
        out.append(trade)
        return
    # The candle builder's idle rule wants the symbol's last arrival, not the release time.
    arrived = state.last_arrival_wall
    state.candles, candles, rejection = add_trade_inplace(state.candles, trade, arrived,
                                                          config.candles, effect)
    if rejection is not None:
        out.append(rejection)
        return
    out.append(trade)
    out.extend(candles)
    if not effect & PRICE_BIT:
        return
    ts = trade.ts_event
    if ts >= state.mark_ts:
        state.mark_ts = ts
        state.pending_mark = trade
        if ts - state.mark_sent_ts >= config.mark_interval_us:
            _send_pending_mark(state, out)


def _send_pending_mark(state: SymbolState, out: list[Output]) -> None:
    trade = state.pending_mark
    if trade is not None:
        out.append(MarkTrade(trade))
        state.mark_sent_ts = trade.ts_event
        state.pending_mark = None
