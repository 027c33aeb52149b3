"""The causal tick filter: every trade and quote is accepted or rejected with one reason code.

Causal and one pass: the verdict on tick i depends only on the ticks before it in the same
(venue, symbol) stream and on the tick itself, so the stream and the backfill reject exactly the
same ticks when they see each (venue, symbol)'s ticks in the same order. The outside-quote rule
couples a symbol's trades to its quotes: for the verdicts to match, trades and quotes of a
(venue, symbol) must also be interleaved the same way (one merged, ordered input per symbol).

Rules, in the order they are applied; a tick gets the code of the first rule it fails:

1. `unknown_symbol` (only when `FilterConfig.instruments` is set). Checked before any state is
   created, so junk symbols cost no memory.
2. `duplicate_seq` / `seq_too_old`, see `tapeflow.core.market.sequence`. A gap is reported as a
   `SequenceGap` output alongside the verdict, even when the tick itself is then rejected by a
   later rule (the venue did send it).
3. `non_positive_price`, `non_positive_size` (quotes: any of bid/ask price, then any size).
4. `future_timestamp`: `ts_event > now_us + max_future_skew_us`. `now_us` is the receive time
   the caller passes in (the Kafka message timestamp in the stream, which replays identically;
   a receive-time column, or None to skip the rule, in a backfill). It is never read from a
   clock here.
5. Quotes: `crossed_quote` when bid > ask. A locked quote (bid == ask) is accepted: venues
   report locked books in auctions and fast markets, and it carries a usable price.
   Then `wide_spread`, see `FilterConfig`. The spread reference holds the spreads of every quote
   that got this far, accepted or not, so a lasting change of regime is accepted after about
   half a window instead of freezing the reference.
6. Trades: `outside_quote`, against the venue's last *accepted* quote, only if that quote is not
   newer than the trade and at most `quote_max_age_us` older (an old book says nothing).
7. Trades: `price_outlier` against the rolling median and IQR of the last k trade prices that
   got past rule 4, accepted or not, so a run of rejections cannot freeze the reference.
   Quartiles are nearest-rank and symmetric: with the n prices sorted, q1 = s[(n-1)//4],
   q3 = s[n-1-(n-1)//4]; the median of an even count is the floor of the two middles' mean.
   Fewer than `outlier_min_history` prices: no outlier rule (warm-up; a single bad print in
   the warm-up cannot move a median much). Re-anchor: a trade that is an outlier is accepted
   when it and the `reanchor_count - 1` trades just before it (same venue and symbol) were all
   outliers and all lie within the current threshold of each other (max - min <= threshold);
   the reference is then reset to those m prices, so the trades after it are judged against
   the new level. The earlier m-1 stay rejected: the filter never revises a verdict.
   Rules 6 and 7 update the reference and the outlier run from the price alone, whichever
   verdict wins, so the reference does not depend on the quote stream.
   Late trades: a trade whose ts_event is more than `outlier_max_age_us` (10 s) older than the
   newest ts_event that joined the reference (a running maximum per venue and symbol) is not
   judged by rule 7, is not added to the reference and leaves the re-anchor run as it is; it
   is counted in `trade.outlier_skipped_stale`. The reference describes the market now; a
   print minutes old would be judged against prices the market reached after it (a false
   `price_outlier` whenever it moved), and once in the window it would drag the median back.
   Rules 1-6 still apply (rule 6 only if the prevailing quote is not newer than the trade).
   The clock only moves forward, so a trade with a bogus future timestamp that got past
   rule 4 (a backfill without receive times) exempts the following trades of its key until
   event time catches up; the counter shows it.

State: `FilterState` is a mutable object owned by one partition of keys (one Bytewax key, or a
whole backfill). Copying k-price windows on every tick would cost more than the rest of the
filter, so `filter_trade_inplace` and `filter_quote_inplace` advance the state in place and return
it; treat the state you passed in as consumed. It pickles (Bytewax snapshots) and is deterministic:
the same ticks in the same order give the same verdicts and an equal state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from tapeflow.core.fixedpoint import fmt
from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.filter_state import (
    NO_TIME,
    FilterState,
    KeyState,
    clear_reference,
    count,
    price_outlier,
    reseed,
    spread_limit,
)
from tapeflow.core.market.rejections import Rejection, RejectReason, SequenceGap, TickKind
from tapeflow.core.market.sequence import FILLED, RESET, SHARED, SeqTracker
from tapeflow.core.models import Quote, Trade

_TRADE = TickKind.TRADE
_QUOTE = TickKind.QUOTE
_R = RejectReason
_new_tuple = tuple.__new__


def _reject(
    state: FilterState, kind: TickKind, reason: RejectReason, tick: Trade | Quote, detail: str
) -> Rejection:
    count(state.counters, f"{kind}.{reason}")
    return Rejection(kind, reason, tick, detail)


def _sequence(
    state: FilterState,
    tracker: SeqTracker,
    kind: TickKind,
    tick: Trade | Quote,
    config: FilterConfig,
) -> tuple[Rejection | None, SequenceGap | None]:
    """The slow path of the sequence rule (anything but the next number in order)."""
    reason, missing, outcome = tracker.observe(
        tick.seq, tick.ts_event, tick, window=config.seq_window,
        reset_min_gap_us=config.seq_reset_min_gap_us, reset_start=config.seq_reset_start,
        packet_memory=config.packet_memory,
    )
    counters = state.counters
    if reason is not None:
        return _reject(state, kind, reason, tick, f"seq {tick.seq}, highest {tracker.top}"), None
    if missing:
        count(counters, f"{kind}.seq_gaps")
        count(counters, f"{kind}.seq_missing", missing)
        gap = SequenceGap(
            kind, tick.venue, tick.symbol, tick.seq - missing, tick.seq, missing, tick.ts_event
        )
        return None, gap
    if outcome == FILLED:
        count(counters, f"{kind}.seq_gap_fills")
    elif outcome == RESET:
        count(counters, f"{kind}.seq_resets")
    elif outcome == SHARED:
        count(counters, f"{kind}.seq_shared")
    return None, None


def _key_state(state: FilterState, tick: Trade | Quote, config: FilterConfig) -> KeyState | None:
    symbol = tick.symbol
    instruments = config.instruments
    if instruments is not None and symbol not in instruments:
        return None
    ks = state.keys[(tick.venue, symbol)] = KeyState(
        config.tick_size(symbol), config.seq_mode_of(tick.venue)
    )
    return ks


def filter_trade_inplace(  # noqa: PLR0915 - the per-trade path is inlined on purpose (speed)
    state: FilterState,
    trade: Trade,
    now_us: int | None,
    config: FilterConfig = DEFAULT_FILTER_CONFIG,
) -> tuple[FilterState, Rejection | None, SequenceGap | None]:
    """Judge one trade: (state, rejection or None if accepted, sequence gap or None).
    Advances `state` in place (module doc, "State")."""
    # One unpack instead of eight named-field reads: NamedTuple attributes are not specialised
    # by the 3.11 interpreter, tuple unpacking is.
    symbol, venue, ts, seq, price, size, _trade_id, _conditions = trade
    ks = state.keys.get((venue, symbol))
    if ks is None:
        ks = _key_state(state, trade, config)
        if ks is None:
            return state, _reject(state, _TRADE, _R.UNKNOWN_SYMBOL, trade, symbol), None
    gap = None
    tracker = ks.trade_seq
    if tracker.unique and seq == tracker.top + 1:
        tracker.top = seq
        tracker.top_ts = ts
    else:
        rejection, gap = _sequence(state, tracker, _TRADE, trade, config)
        if rejection is not None:
            return state, rejection, None
    if price <= 0:
        return state, _reject(state, _TRADE, _R.NON_POSITIVE_PRICE, trade, fmt(price)), gap
    if size <= 0:
        return state, _reject(state, _TRADE, _R.NON_POSITIVE_SIZE, trade, fmt(size)), gap
    if now_us is not None and ts > now_us + config.max_future_skew_us:
        return (
            state,
            _reject(
                state, _TRADE, _R.FUTURE_TIMESTAMP, trade, f"{ts - now_us} us ahead of receive time"
            ),
            gap,
        )

    # Late prints (rule 7's exemption) are recognised first, so the counter counts every late
    # print the outlier rule did not judge, whatever rule 6 then says.
    newest = ks.prices_newest
    fresh = True
    if ts < newest:
        max_age = config.outlier_max_age_us
        fresh = max_age is None or newest - ts <= max_age
        if not fresh:
            # Late: the reference is newer than this print by more than the market can be
            # trusted to stand still. Not judged, not added, the re-anchor run left alone.
            count(state.counters, "trade.outlier_skipped_stale")

    # Rule 6: a print outside the quote is rejected and leaves the price reference and the
    # re-anchor run alone (it is known bad); a print inside a fresh quote is never an outlier
    # (the quote says where the market is, e.g. at a reopening after a halt).
    inside = False
    quote_ts = ks.quote_ts
    ratio = config.quote_ratio
    if quote_ts is not None and ratio is not None and 0 <= ts - quote_ts <= config.quote_max_age_us:
        bid = ks.bid
        ask = ks.ask
        tol = (ask - bid) * ratio[0] // ratio[1]
        floor = config.quote_tolerance_min_ticks * ks.tick
        tol = max(tol, floor)
        if price < bid - tol or price > ask + tol:
            return (
                state,
                _reject(
                    state,
                    _TRADE,
                    _R.OUTSIDE_QUOTE,
                    trade,
                    f"price {fmt(price)} outside quote {fmt(bid)}/{fmt(ask)}"
                    f" by more than {fmt(tol)}",
                ),
                gap,
            )
        inside = bid <= price <= ask

    # Rule 7's reference, judged before this price joins it (causal). The band test is the
    # proven shortcut of `tapeflow.core.market.filter_state`; `price_outlier` is the exact rule.
    outlier = False
    reanchored = False
    limit = 0
    n = 0
    if ts >= newest:
        reset_gap = config.outlier_reset_gap_us
        if reset_gap is not None and newest != NO_TIME and ts - newest > reset_gap:
            # A halt or a session break: the old reference says nothing about the market now.
            clear_reference(ks, config.outlier_window)
            count(state.counters, "trade.reference_resets")
        ks.prices_newest = ts
    if fresh:
        ring = ks.prices
        n = len(ring)
        window = config.outlier_window
        if n >= config.outlier_min_history:
            d = ks.prices_stale
            h = n >> 1
            if d < h:
                srt = ks.prices_sorted
                band = ks.prices_band
                if not srt[h + d] - band <= price <= srt[h - 1 - d] + band:
                    outlier, limit = price_outlier(ks, price, config)
            else:
                outlier, limit = price_outlier(ks, price, config)
        if outlier:
            run = ks.run
            run.append(price)
            m = config.reanchor_count
            if len(run) > m:
                del run[0]
            if len(run) == m and max(run) - min(run) <= limit:
                reanchored = True
                reseed(ks, run, window)
                count(state.counters, "trade.reanchors")
        elif ks.run:
            ks.run.clear()
        if not reanchored:
            if n < window:
                ring.append(price)
                ks.prices_stale = window  # growing: the snapshot bound does not apply
            else:
                pos = ks.prices_pos
                ring[pos] = price
                pos += 1
                ks.prices_pos = 0 if pos == window else pos
                ks.prices_stale += 1

    if outlier and not reanchored:
        if inside:
            count(state.counters, "trade.inside_quote_outliers")
        else:
            return (
                state,
                _reject(
                    state,
                    _TRADE,
                    _R.PRICE_OUTLIER,
                    trade,
                    f"price {fmt(price)} vs rolling median of {n}: more than {fmt(limit)} away",
                ),
                gap,
            )
    state.counters["trade.accepted"] += 1
    return state, None, gap


def filter_quote_inplace(  # noqa: PLR0915 - inlined on purpose, like filter_trade_inplace
    state: FilterState,
    quote: Quote,
    now_us: int | None,
    config: FilterConfig = DEFAULT_FILTER_CONFIG,
) -> tuple[FilterState, Rejection | None, SequenceGap | None]:
    """Judge one quote: (state, rejection or None if accepted, sequence gap or None).
    Advances `state` in place.

    An accepted quote becomes the venue's prevailing quote for rule 6, unless it is older in
    event time than the prevailing one (a late gap fill does not roll the book back).
    """
    symbol, venue, ts, seq, bid, bid_sz, ask, ask_sz = quote
    ks = state.keys.get((venue, symbol))
    if ks is None:
        ks = _key_state(state, quote, config)
        if ks is None:
            return state, _reject(state, _QUOTE, _R.UNKNOWN_SYMBOL, quote, symbol), None
    gap = None
    tracker = ks.quote_seq
    if tracker.unique and seq == tracker.top + 1:
        tracker.top = seq
        tracker.top_ts = ts
    else:
        rejection, gap = _sequence(state, tracker, _QUOTE, quote, config)
        if rejection is not None:
            return state, rejection, None
    if bid <= 0 or ask <= 0:
        detail = f"bid {fmt(bid)} ask {fmt(ask)}"
        return state, _reject(state, _QUOTE, _R.NON_POSITIVE_PRICE, quote, detail), gap
    if bid_sz <= 0 or ask_sz <= 0:
        detail = f"bid size {fmt(bid_sz)} ask size {fmt(ask_sz)}"
        return state, _reject(state, _QUOTE, _R.NON_POSITIVE_SIZE, quote, detail), gap
    if now_us is not None and ts > now_us + config.max_future_skew_us:
        detail = f"{ts - now_us} us ahead of receive time"
        return state, _reject(state, _QUOTE, _R.FUTURE_TIMESTAMP, quote, detail), gap
    if bid > ask:
        detail = f"bid {fmt(bid)} > ask {fmt(ask)}"
        return state, _reject(state, _QUOTE, _R.CROSSED_QUOTE, quote, detail), gap

    spread = ask - bid
    spreads = ks.spreads
    n = len(spreads)
    wide = False
    limit = 0
    window = config.spread_window
    if n >= config.spread_min_history:
        d = ks.spreads_stale
        h = n >> 1
        # Shortcut as for prices: the median is at least S[h - 1 - d] of the old snapshot.
        if d >= h or (
            spread > config.spread_min_ticks * ks.tick
            and spread
            > ks.spreads_sorted[h - 1 - d] * config.spread_ratio[0] // config.spread_ratio[1]
        ):
            limit = spread_limit(ks, config)
            wide = spread > limit
    if n < window:
        spreads.append(spread)
        ks.spreads_stale = window
    else:
        pos = ks.spreads_pos
        spreads[pos] = spread
        pos += 1
        ks.spreads_pos = 0 if pos == window else pos
        ks.spreads_stale += 1
    if wide:
        detail = f"spread {fmt(spread)} > limit {fmt(limit)} from rolling median of {n}"
        return state, _reject(state, _QUOTE, _R.WIDE_SPREAD, quote, detail), gap

    prevailing_ts = ks.quote_ts
    if prevailing_ts is None or ts >= prevailing_ts:
        ks.bid = bid
        ks.ask = ask
        ks.quote_ts = ts
    state.counters["quote.accepted"] += 1
    return state, None, gap


class Decision(NamedTuple):
    """The filter's verdict on one tick, for batch use."""

    tick: Trade | Quote
    rejection: Rejection | None
    gap: SequenceGap | None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def run_filter(
    ticks: Iterable[Trade | Quote],
    config: FilterConfig = DEFAULT_FILTER_CONFIG,
    now_us: int | None = None,
    state: FilterState | None = None,
) -> list[Decision]:
    """Filter a whole sequence in order (backfill, tests); same verdicts as tick by tick."""
    st = FilterState() if state is None else state
    out: list[Decision] = []
    append = out.append
    for tick in ticks:
        if isinstance(tick, Trade):
            st, rejection, gap = filter_trade_inplace(st, tick, now_us, config)
        else:
            st, rejection, gap = filter_quote_inplace(st, tick, now_us, config)
        append(_new_tuple(Decision, (tick, rejection, gap)))  # cheaper than Decision(...)
    return out
