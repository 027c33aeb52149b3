"""tapeflow.core.market.symbol_step: merged interleaving, filter + candles + marks per symbol,
resumable."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest

from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.conditions import DEFAULT_CONDITION_RULES, PRICE_BIT
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.symbol_step import (
    Arrival,
    ArrivalError,
    MarketConfig,
    MarkTrade,
    SymbolState,
    on_arrival_inplace,
    on_arrivals_inplace,
    on_end_inplace,
    on_wall_clock_inplace,
)
from tapeflow.core.models import Quote, Trade

SPEC = MarketSpec(seed=11, n_symbols=3, duration_s=20.0, fault_rate=0.03)
WIDE = MarketConfig(merge_max_wait_us=10**12)


def _ticks() -> tuple[Any, list[Trade | Quote]]:
    market = generate_market(SPEC)
    ticks = [rec for _t, _k, rec in market.stream() if isinstance(rec, Trade | Quote)]
    return market, ticks


def _run(arrivals: list[Trade | Quote], config: MarketConfig = WIDE) -> list[Any]:
    states: dict[str, SymbolState] = {}
    out: list[Any] = []
    for tick in arrivals:
        state = states.setdefault(tick.symbol, SymbolState())
        out += on_arrival_inplace(state, Arrival(tick, None), None, config)[1]
    for state in states.values():
        out += on_end_inplace(state, config)[1]
    return out


def _per_symbol(out: list[Any]) -> dict[str, list[Any]]:
    by: dict[str, list[Any]] = {}
    for o in out:
        symbol = o.tick.symbol if isinstance(o, Rejection) else o.symbol
        by.setdefault(symbol, []).append(o)
    return by


def test_the_interleaving_of_the_two_topics_does_not_change_anything() -> None:
    _, ticks = _ticks()
    trades = [t for t in ticks if isinstance(t, Trade)]
    quotes = [t for t in ticks if isinstance(t, Quote)]
    as_arrived = _per_symbol(_run(ticks))
    assert as_arrived == _per_symbol(_run(trades + quotes))
    assert as_arrived == _per_symbol(_run(quotes + trades))


def test_verdicts_match_the_labels() -> None:
    market, ticks = _ticks()
    out = _run(ticks)
    got = Counter((o.kind.value, o.tick, o.reason.value) for o in out if isinstance(o, Rejection))
    want: Counter[tuple[str, Any, str]] = Counter()
    for lab in market.labels:
        if lab.kind in ("trade", "quote") and lab.expected_reason is not None:
            rec = market.trades[lab.row] if lab.kind == "trade" else market.quotes[lab.row]
            want[(lab.kind, rec, lab.expected_reason)] += 1
    assert sum(want.values()) > 10
    assert got == want


def test_candles_are_the_batch_fold_of_the_accepted_trades() -> None:
    _, ticks = _ticks()
    out = _run(ticks)
    accepted = [o for o in out if isinstance(o, Trade)]
    streamed = final_candles(o for o in out if isinstance(o, Candle))
    batch = final_candles(build_candles(accepted)[0])
    assert streamed == batch


def test_marks_are_clean_monotonic_and_throttled() -> None:
    _, ticks = _ticks()
    config = MarketConfig(merge_max_wait_us=10**12, mark_interval_us=2_000_000)
    out = _run(ticks, config)
    accepted = {o for o in out if isinstance(o, Trade)}
    for symbol, items in _per_symbol(out).items():
        marks = [o.trade for o in items if isinstance(o, MarkTrade)]
        assert marks and all(m in accepted for m in marks)
        assert all(a.ts_event <= b.ts_event for a, b in pairwise(marks))
        assert all(b.ts_event - a.ts_event >= 2_000_000
                   for a, b in pairwise(marks[:-1]))
        # The mark is the last clean trade that sets prices: an odd lot (condition I, UTP
        # processing guidelines: no update of the last sale) is never a mark.
        priced = [t for t in accepted if t.symbol == symbol
                  and DEFAULT_CONDITION_RULES.effect(t.venue, t.conditions) & PRICE_BIT]
        assert not [m for m in marks if "I" in m.conditions]
        assert marks[-1].ts_event == max(t.ts_event for t in priced)


def test_a_rejected_trade_never_marks() -> None:
    state = SymbolState()
    good = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    bad = Trade("AAA", "XNAS", 3_000_000, 2, 0, ONE)
    _, out = on_arrival_inplace(state, Arrival(good, None), None, MarketConfig(merge_max_wait_us=0))
    assert MarkTrade(good) in out
    _, out = on_arrival_inplace(state, Arrival(bad, None), None, MarketConfig(merge_max_wait_us=0))
    assert not any(isinstance(o, MarkTrade) for o in out)
    _, out = on_end_inplace(state)
    assert not any(isinstance(o, MarkTrade) for o in out)


def test_a_pickled_state_resumes_identically() -> None:
    _, ticks = _ticks()
    whole = _run(ticks)
    states: dict[str, SymbolState] = {}
    out: list[Any] = []
    half = len(ticks) // 2
    for i, tick in enumerate(ticks):
        if i == half:
            states = pickle.loads(pickle.dumps(states))
        state = states.setdefault(tick.symbol, SymbolState())
        out += on_arrival_inplace(state, Arrival(tick, None), None, WIDE)[1]
    for state in states.values():
        out += on_end_inplace(state, WIDE)[1]
    assert _per_symbol(out) == _per_symbol(whole)


def test_one_kind_is_held_only_up_to_the_merge_wait() -> None:
    config = MarketConfig(merge_max_wait_us=5_000_000)
    state = SymbolState()
    first = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    _, out = on_arrival_inplace(state, Arrival(first, None), None, config)
    assert out == []  # waiting for a quote to compare with
    later = Trade("AAA", "XNAS", 6_000_001, 2, 100 * ONE, ONE)
    _, out = on_arrival_inplace(state, Arrival(later, None), None, config)
    assert first in out and later not in out


def test_a_future_timestamp_does_not_hold_its_kind_back() -> None:
    """The merge key is capped at the receive time: a quote stamped far in the future is
    merged where it arrived (and rejected there), not held until trades reach its time."""
    state = SymbolState()
    recv = 10_000_000
    bogus = Quote("AAA", "XNAS", 10**15, 1, 99 * ONE, ONE, 100 * ONE, ONE)
    quote = Quote("AAA", "XNAS", recv + 1, 2, 99 * ONE, ONE, 100 * ONE, ONE)
    trade = Trade("AAA", "XNAS", recv + 2, 1, 100 * ONE, ONE)
    on_arrival_inplace(state, Arrival(bogus, recv), None, WIDE)
    on_arrival_inplace(state, Arrival(quote, recv + 1), None, WIDE)
    _, out = on_arrival_inplace(state, Arrival(trade, recv + 2), None, WIDE)
    rejected = [o for o in out if isinstance(o, Rejection)]
    assert [r.reason.value for r in rejected] == ["future_timestamp"]
    assert quote in out and trade not in out  # the trade waits for the next quote


def test_the_wall_clock_releases_a_quiet_symbol() -> None:
    config = MarketConfig(quiet_us=5_000_000)
    state = SymbolState()
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    _, out = on_arrival_inplace(state, Arrival(trade, None), 100_000_000, config)
    assert out == []
    _, out = on_wall_clock_inplace(state, 101_000_000, config)
    assert out == []
    _, out = on_wall_clock_inplace(state, 105_000_000, config)
    assert trade in out and MarkTrade(trade) in out
    assert any(isinstance(o, Candle) for o in out)  # idle buckets closed by the wall clock


@pytest.mark.parametrize("wait_us", [0, 1_000_000, 30_000_000, 10**12])
def test_the_batch_form_is_the_per_tick_form(wait_us: int) -> None:
    """`on_arrivals_inplace` (the partition step's and the backfill's) gives the outputs, in
    order, and the state of `on_arrival_inplace` tick by tick, cut into any batches, with or
    without a wall clock; on a market with every fault kind, at several merge waits."""
    _, ticks = _ticks()
    config = MarketConfig(merge_max_wait_us=wait_us)
    rng = random.Random(wait_us)
    symbols = sorted({t.symbol for t in ticks})
    for wall in (None, 1_767_600_000_000_000):
        for symbol in symbols:
            arrivals = [Arrival(t, t.ts_event + rng.choice([0, 0, 5, -7])) for t in ticks
                        if t.symbol == symbol]
            one, want = SymbolState(), []
            for arrival in arrivals:
                want += on_arrival_inplace(one, arrival, wall, config)[1]
            batched, got = SymbolState(), []
            i = 0
            while i < len(arrivals):
                n = rng.choice([1, 2, 7, 100, len(arrivals)])
                on_arrivals_inplace(batched, arrivals[i:i + n], wall, config, out=got)
                i += n
            assert got == want
            assert batched == one
            assert on_end_inplace(batched, config)[1] == on_end_inplace(one, config)[1]


def test_an_arrival_the_batch_form_cannot_take_is_named_and_the_rest_can_go_on() -> None:
    _, ticks = _ticks()
    symbol = ticks[0].symbol
    arrivals = [Arrival(t, None) for t in ticks if t.symbol == symbol][:40]
    broken = arrivals[10].tick._replace(ts_event=None)
    state, out = SymbolState(), list[Any]()
    with pytest.raises(ArrivalError) as failed:
        on_arrivals_inplace(state, [*arrivals[:10], Arrival(broken, 5), *arrivals[10:]], None,
                            WIDE, out=out)
    assert failed.value.index == 10
    assert isinstance(failed.value.__cause__, TypeError)
    on_arrivals_inplace(state, [*arrivals[:10], Arrival(broken, 5), *arrivals[10:]], None,
                        WIDE, out=out, start=11)
    reference, want = SymbolState(), list[Any]()
    on_arrivals_inplace(reference, arrivals, None, WIDE, out=want)
    assert out == want
