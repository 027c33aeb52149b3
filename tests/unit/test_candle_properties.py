"""Candle builder properties (hypothesis) and a differential test against `candle_reference`."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import (
    MINUTE_US,
    SECOND_US,
    Candle,
    CandleConfig,
    CandleState,
    add_trade_inplace,
    close_idle_inplace,
    flush_inplace,
)
from tapeflow.core.market.rollup import rollup
from tapeflow.core.models import Trade
from tests.support.candle_reference import classify, market, reference
from tests.support.market_builders import T0

CONFIG = CandleConfig()  # 1 s and 1 min, lateness 5 s, retention 1 h
WIDTHS = CONFIG.widths_us
LATENESS = CONFIG.allowed_lateness_us

trades_st = st.lists(
    st.builds(
        Trade,
        symbol=st.sampled_from(("AAA", "BBB")),
        venue=st.sampled_from(("XNAS", "XNYS")),
        ts_event=st.integers(T0, T0 + 4 * MINUTE_US),
        seq=st.integers(0, 6),  # small: ties on (ts, seq) across venues happen
        price=st.integers(1, 10**11),
        size=st.integers(1, 10**10),
        trade_id=st.none(),
        conditions=st.just(()),
    ),
    min_size=1,
    max_size=60,
)


def _arrival(trades: list[Trade], delays: list[int]) -> list[Trade]:
    """Arrival order when trade i is seen at ts_i + delay_i (stable on ties)."""
    order = sorted(range(len(trades)), key=lambda i: (trades[i].ts_event + delays[i], i))
    return [trades[i] for i in order]


def _sorted(trades: list[Trade]) -> list[Trade]:
    return sorted(trades, key=lambda t: (t.ts_event, t.seq, t.venue, t.price))


@settings(max_examples=300, deadline=None)
@given(trades_st)
def test_ohlc_bounds_and_sums(trades: list[Trade]) -> None:
    candles, rejections = build_candles(trades, CONFIG)
    assert rejections == []
    for c in final_candles(candles):
        assert c.low <= c.open <= c.high
        assert c.low <= c.close <= c.high
        assert c.low <= c.vwap <= c.high
    for w in WIDTHS:
        finals = [c for c in final_candles(candles) if c.width_us == w]
        assert sum(c.volume for c in finals) == sum(t.size for t in trades)
        assert sum(c.notional for c in finals) == sum(t.price * t.size for t in trades)
        assert sum(c.trade_count for c in finals) == len(trades)


@settings(max_examples=300, deadline=None)
@given(trades_st, st.data())
def test_any_order_within_lateness_equals_sorted_order(
    trades: list[Trade], data: st.DataObject
) -> None:
    delays = data.draw(
        st.lists(st.integers(0, LATENESS), min_size=len(trades), max_size=len(trades))
    )
    shuffled, rejections = build_candles(_arrival(trades, delays), CONFIG)
    ordered, _ = build_candles(_sorted(trades), CONFIG)
    assert rejections == []
    # Within the allowed lateness nothing is ever corrected: one emission per bucket, whose
    # version is its trade count.
    assert len({(c.symbol, c.width_us, c.bucket) for c in shuffled}) == len(shuffled)
    assert all(c.version == c.trade_count for c in shuffled)
    assert sorted(shuffled) == sorted(ordered)


@settings(max_examples=300, deadline=None)
@given(trades_st, st.data())
def test_any_order_within_retention_converges_to_sorted_order(
    trades: list[Trade], data: st.DataObject
) -> None:
    delays = data.draw(
        st.lists(st.integers(0, 3 * MINUTE_US), min_size=len(trades), max_size=len(trades))
    )
    arrival = _arrival(trades, delays)
    shuffled, rejections = build_candles(arrival, CONFIG)
    assert rejections == []
    # The final candles equal the sorted-order build in every field, version included.
    assert final_candles(shuffled) == final_candles(build_candles(_sorted(trades), CONFIG)[0])
    # Version = trade count, so each correction of a bucket has a strictly higher version.
    seen: dict[tuple[str, int, int], int] = {}
    for c in shuffled:
        key = (c.symbol, c.width_us, c.bucket)
        assert c.version == c.trade_count
        assert c.version > seen.get(key, 0)
        seen[key] = c.version


@settings(max_examples=200, deadline=None)
@given(trades_st, st.data())
def test_replay_gives_identical_versions_and_classes(
    trades: list[Trade], data: st.DataObject
) -> None:
    delays = data.draw(
        st.lists(st.integers(0, 2 * MINUTE_US), min_size=len(trades), max_size=len(trades))
    )
    arrival = _arrival(trades, delays)
    small = CandleConfig(retention_us=30 * SECOND_US)  # so some trades are too late
    assert build_candles(arrival, small) == build_candles(arrival, small)
    assert classify(arrival, small) == classify(arrival, small)


@settings(max_examples=200, deadline=None)
@given(trades_st)
def test_rollup_equals_direct_build(trades: list[Trade]) -> None:
    config = CandleConfig(widths_us=(SECOND_US, MINUTE_US, 5 * MINUTE_US))
    candles, _ = build_candles(trades, config)
    finals = final_candles(candles)
    by_width = {w: [c for c in finals if c.width_us == w] for w in config.widths_us}
    # Every field, version included (sum of the parts' trade counts = the direct trade count).
    assert rollup(by_width[SECOND_US], MINUTE_US) == by_width[MINUTE_US]
    assert rollup(by_width[MINUTE_US], 5 * MINUTE_US) == by_width[5 * MINUTE_US]
    assert rollup(by_width[SECOND_US], 5 * MINUTE_US) == by_width[5 * MINUTE_US]


def _latest(candles: list[Candle]) -> dict[tuple[str, int, int], Candle]:
    """(symbol, width, bucket) -> its highest-version candle, as ReplacingMergeTree keeps it."""
    return {(c.symbol, c.width_us, c.bucket): c for c in final_candles(candles)}


@settings(max_examples=200, deadline=None)
@given(trades_st, st.data())
def test_wall_clock_closing_changes_emissions_not_versions(
    trades: list[Trade], data: st.DataObject
) -> None:
    delays = data.draw(
        st.lists(st.integers(0, MINUTE_US), min_size=len(trades), max_size=len(trades))
    )
    arrival = _arrival(trades, delays)
    idle_after = set(data.draw(st.lists(st.integers(0, len(arrival) - 1), max_size=5)))
    state = CandleState()
    emitted = []
    wall = T0 + 3600 * SECOND_US  # a replay: wall clock well after event time
    for i, t in enumerate(arrival):
        state, out, rejection = add_trade_inplace(state, t, wall, CONFIG)
        assert rejection is None
        emitted.extend(out)
        if i in idle_after:
            wall += CONFIG.idle_timeout_us
            state, out = close_idle_inplace(state, wall, CONFIG)
            emitted.extend(out)
    state, out = flush_inplace(state)
    emitted.extend(out)
    plain, _ = build_candles(arrival, CONFIG)
    # Same highest-version candle per bucket, every field, and the same version numbers.
    assert _latest(emitted) == _latest(plain)
    assert {k: c.version for k, c in _latest(emitted).items()} == {
        k: c.version for k, c in _latest(plain).items()
    }
    # A crash: a store holding both runs' emissions (killed run with idle closes, replay
    # without) keeps the complete candle, whichever run's rows it sees first.
    assert _latest(emitted + plain) == _latest(plain) == _latest(plain + emitted)
    # Rolled up from either run: equal to the direct 1 min build, version included.
    for run in (emitted, plain):
        seconds = [c for c in final_candles(run) if c.width_us == SECOND_US]
        minutes = [c for c in final_candles(plain) if c.width_us == MINUTE_US]
        assert rollup(seconds, MINUTE_US) == minutes


def _random_case(rng: random.Random) -> tuple[list[Trade], list[Trade]]:
    """Trades in event time, and an arrival order with delays of up to 40 s (beyond lateness)."""
    n = rng.randint(1, 40)
    span = rng.choice((3 * SECOND_US, 2 * MINUTE_US, 15 * MINUTE_US))
    trades = [
        Trade(
            rng.choice(("AAA", "BBB", "CCC")),
            rng.choice(("XNAS", "XNYS")),
            T0 + rng.randrange(span),
            rng.randrange(4),
            rng.randint(1, 2_000) * 10**6,
            rng.randint(1, 500) * 10**8,
            None,
            (),
        )
        for _ in range(n)
    ]
    delays = [rng.choice((0, 0, rng.randrange(40 * SECOND_US))) for _ in trades]
    return trades, _arrival(trades, delays)


def test_differential_against_simple_reference() -> None:
    """Thousands of random cases, with too-late trades: candles == reference(accepted trades)."""
    rng = random.Random(20260105)
    config = CandleConfig(retention_us=20 * SECOND_US)
    late_seen = corrected_seen = 0
    for _ in range(3000):
        _, arrival = _random_case(rng)
        candles, rejections = build_candles(arrival, config)
        rejected = {id(r.tick) for r in rejections}
        accepted = [t for t in arrival if id(t) not in rejected]
        for w in config.widths_us:
            assert market(final_candles(candles), w) == reference(accepted, w)
        # Too late is exactly "older than max earlier ts - lateness - retention" per symbol.
        top: dict[str, int] = {}
        expect_late = set()
        for t in arrival:
            best = top.get(t.symbol)
            if best is not None and t.ts_event < best - LATENESS - config.retention_us:
                expect_late.add(id(t))
            top[t.symbol] = max(best or t.ts_event, t.ts_event)
        assert rejected == expect_late
        late_seen += len(rejected)
        out: set[tuple[str, int, int]] = set()
        for c in candles:
            key = (c.symbol, c.width_us, c.bucket)
            corrected_seen += key in out
            out.add(key)
            assert c.version == c.trade_count
    assert late_seen > 100 and corrected_seen > 100  # both paths were exercised


def test_classification_is_identical_on_replay() -> None:
    """On time / corrected / too late, per trade and width: the same on every run."""
    rng = random.Random(7)
    config = CandleConfig(retention_us=20 * SECOND_US)
    arrival: list[Trade] = []
    for _ in range(300):
        arrival.extend(_random_case(rng)[1])
    first = classify(arrival, config)
    assert classify(list(arrival), config) == first
    seen = {c for row in first for c in row}
    assert seen == {"on_time", "corrected", "too_late"}
