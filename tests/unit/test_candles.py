"""Candle builder: worked examples for each rule of docs/design.md "Semantics"."""

from __future__ import annotations

import pickle

import pytest

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
from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.market.rollup import rollup
from tapeflow.core.models import Trade
from tests.support.market_builders import T0, px, trade

M = MINUTE_US
ONE_MINUTE = CandleConfig(widths_us=(M,))
B0 = T0 - T0 % M  # a minute boundary


def _feed(
    trades: list[Trade], config: CandleConfig = ONE_MINUTE
) -> tuple[CandleState, list[list[Candle]], list[RejectReason | None]]:
    state = CandleState()
    emitted: list[list[Candle]] = []
    reasons: list[RejectReason | None] = []
    for t in trades:
        state, candles, rejection = add_trade_inplace(state, t, None, config)
        emitted.append(list(candles))
        reasons.append(None if rejection is None else rejection.reason)
    return state, emitted, reasons


def test_one_bucket_exact_fields() -> None:
    trades = [
        trade("10.00", size="3", ts=B0 + 5, seq=2),
        trade("10.50", size="1", ts=B0 + 1, seq=1),  # earlier: the open
        trade("9.75", size="2", ts=B0 + 9, seq=4),
        trade("10.10", size="4", ts=B0 + 9, seq=5),  # same ts, higher seq: the close
    ]
    candles, rejections = build_candles(trades, ONE_MINUTE)
    assert rejections == []
    notional = px("10.00") * px(3) + px("10.50") * px(1) + px("9.75") * px(2) + px("10.10") * px(4)
    assert candles == [
        Candle(
            "AAA",
            B0,
            M,
            open=px("10.50"),
            high=px("10.50"),
            low=px("9.75"),
            close=px("10.10"),
            volume=px(10),
            notional=notional,
            vwap=px("10.04"),  # 100.4 / 10
            trade_count=4,
            version=4,  # = trade_count
        )
    ]


def test_vwap_rounds_half_even() -> None:
    # notional / volume = 0.000000025 exactly -> 2 units (half to even), 0.000000035 -> 4.
    t1 = [Trade("AAA", "X", B0, 1, 1, 2, None, ()), Trade("AAA", "X", B0, 2, 4, 2, None, ())]
    (c,), _ = build_candles(t1, ONE_MINUTE)
    assert c.notional == 10 and c.volume == 4 and c.vwap == 2
    t2 = [Trade("AAA", "X", B0, 1, 3, 2, None, ()), Trade("AAA", "X", B0, 2, 4, 2, None, ())]
    (c,), _ = build_candles(t2, ONE_MINUTE)
    assert c.notional == 14 and c.vwap == 4


def test_ties_on_ts_and_seq_break_by_venue_then_price() -> None:
    a = trade("10", ts=B0, seq=1, venue="XNYS")
    b = trade("11", ts=B0, seq=1, venue="XNAS")
    for order in ([a, b], [b, a]):
        (c,), _ = build_candles(order, ONE_MINUTE)
        assert (c.open, c.close) == (b.price, a.price)


def test_bucket_is_emitted_when_the_watermark_reaches_its_end() -> None:
    lateness = ONE_MINUTE.allowed_lateness_us
    first = trade("10", ts=B0 + 1, seq=1)
    just_before = trade("11", ts=B0 + M + lateness - 1, seq=2)
    at_end = trade("12", ts=B0 + M + lateness, seq=3)
    _, emitted, _ = _feed([first, just_before, at_end])
    assert emitted[0] == [] and emitted[1] == []
    assert [(c.bucket, c.close, c.version) for c in emitted[2]] == [(B0, first.price, 1)]


def test_version_is_the_trade_count_and_a_correction_raises_it() -> None:
    t = [
        trade("10", ts=B0 + 1, seq=1),
        trade("11", ts=B0 + 2, seq=2),
        trade("12", ts=B0 + 3, seq=3),
        trade("10", ts=B0 + 2 * M, seq=4),  # closes bucket B0 with three trades
        trade("15", ts=B0 + 30, seq=5),  # late, within the horizon
    ]
    _, emitted, _ = _feed(t)
    assert [(c.bucket, c.trade_count, c.version) for c in emitted[3]] == [(B0, 3, 3)]
    # Not emission count + 1 (= 2): the corrected candle holds four trades, version 4.
    assert [(c.bucket, c.trade_count, c.version, c.high) for c in emitted[4]] == [
        (B0, 4, 4, px(15))
    ]


def test_late_trade_reemits_with_a_higher_version() -> None:
    t = [
        trade("10", ts=B0 + 1, seq=1),
        trade("10", ts=B0 + 2 * M, seq=2),  # closes bucket B0
        trade("15", ts=B0 + 30, seq=3),  # late, within the horizon
        trade("5", ts=B0 + 40, seq=4),  # later still
    ]
    state, emitted, reasons = _feed(t)
    assert reasons == [None] * 4
    assert [(c.version, c.high, c.low, c.trade_count) for c in emitted[2]] == [
        (2, px(15), px(10), 2)
    ]
    assert [(c.version, c.low, c.close, c.trade_count) for c in emitted[3]] == [
        (3, px(5), px(5), 3)
    ]
    assert state.counters["corrections"] == 2


def test_late_trade_for_an_unseen_bucket_is_emitted_at_once() -> None:
    t = [trade("10", ts=B0 + 10 * M, seq=1), trade("7", ts=B0 + 1, seq=2)]
    state, emitted, _ = _feed(t)
    assert [(c.bucket, c.version, c.open) for c in emitted[1]] == [(B0, 1, px(7))]
    assert state.counters["late_new"] == 1


def test_too_late_at_the_retention_horizon() -> None:
    config = CandleConfig(widths_us=(M,), allowed_lateness_us=5 * SECOND_US, retention_us=M)
    top = B0 + 10 * M
    floor = top - config.allowed_lateness_us - config.retention_us
    t = [
        trade("10", ts=top, seq=1),
        trade("10", ts=floor, seq=2),  # exactly at the horizon: still correctable
        trade("10", ts=floor - 1, seq=3),  # one microsecond older: too late
    ]
    state, _, reasons = _feed(t, config)
    assert reasons == [None, None, RejectReason.TOO_LATE]
    assert state.counters["too_late"] == 1


def test_empty_buckets_are_not_emitted() -> None:
    t = [trade("10", ts=B0, seq=1), trade("11", ts=B0 + 5 * M, seq=2)]
    candles, _ = build_candles(t, ONE_MINUTE)
    assert [c.bucket for c in candles] == [B0, B0 + 5 * M]


def test_non_positive_input_is_refused_not_crashed() -> None:
    state = CandleState()
    state, out, rejection = add_trade_inplace(state, Trade("AAA", "X", B0, 1, px(1), 0, None, ()))
    assert out == () and rejection is not None
    assert rejection.reason == RejectReason.NON_POSITIVE_SIZE
    state, out, rejection = add_trade_inplace(state, Trade("AAA", "X", B0, 1, 0, px(1), None, ()))
    assert rejection is not None and rejection.reason == RejectReason.NON_POSITIVE_PRICE
    assert flush_inplace(state)[1] == ()


def test_wall_clock_closes_idle_buckets_and_late_trades_still_correct() -> None:
    config = ONE_MINUTE
    state = CandleState()
    arrival = B0 + 600 * M  # wall clock: a replay ten hours after the fact
    state, _, _ = add_trade_inplace(state, trade("10", ts=B0 + 1, seq=1), arrival, config)
    # Not idle yet: nothing closes.
    state, out = close_idle_inplace(state, arrival + config.idle_timeout_us - 1, config)
    assert out == ()
    state, out = close_idle_inplace(state, arrival + config.idle_timeout_us, config)
    assert [(c.bucket, c.version, c.trade_count) for c in out] == [(B0, 1, 1)]
    # A trade for the same bucket, within the lateness: corrected, version 2 (two trades).
    state, out, rejection = add_trade_inplace(state, trade("12", ts=B0 + 2, seq=2), arrival + M,
                                              config)
    assert rejection is None
    assert [(c.version, c.close, c.trade_count) for c in out] == [(2, px(12), 2)]
    # The final candle equals the one built without the wall clock (emitted once), version
    # included.
    plain, _ = build_candles([trade("10", ts=B0 + 1, seq=1), trade("12", ts=B0 + 2, seq=2)], config)
    assert out[0] == plain[0]


def test_idle_does_not_close_a_bucket_before_its_end_plus_lateness() -> None:
    config = ONE_MINUTE
    state = CandleState()
    state, _, _ = add_trade_inplace(state, trade("10", ts=B0 + 1, seq=1), B0 + 1, config)
    state, out = close_idle_inplace(state, B0 + M + config.allowed_lateness_us - 1, config)
    assert out == ()
    state, out = close_idle_inplace(state, B0 + M + config.allowed_lateness_us, config)
    assert len(out) == 1


def test_memory_is_bounded_by_the_retention_horizon() -> None:
    config = CandleConfig(widths_us=(SECOND_US, M), retention_us=10 * M)
    state = CandleState()
    for i in range(0, 3 * 3600):  # three hours, one trade a second
        state, _, _ = add_trade_inplace(state, trade("10", ts=B0 + i * SECOND_US, seq=i), None,
        config)
    sym = state.symbols["AAA"]
    per_second, per_minute = sym.widths
    assert len(per_second.emitted) <= 10 * 60 + 10
    assert len(per_minute.emitted) <= 10 + 2
    assert len(per_second.open) <= 6 and len(per_minute.open) <= 1
    assert len(per_second.heap) == len(per_second.emitted)


def test_snapshot_roundtrip_continues_identically() -> None:
    trades = [trade(str(10 + i % 7), ts=B0 + i * 7 * SECOND_US, seq=i) for i in range(200)]
    late = [trade("3", ts=B0 + 15 * SECOND_US * k, seq=1000 + k) for k in range(40)]
    stream = trades[:100] + late + trades[100:]
    state = CandleState()
    whole = []
    for t in stream:
        state, out, _ = add_trade_inplace(state, t)
        whole.extend(out)
    state = CandleState()
    resumed = []
    for i, t in enumerate(stream):
        if i == 120:
            copy = pickle.loads(pickle.dumps(state))
            assert copy == state
            state = copy
        state, out, _ = add_trade_inplace(state, t)
        resumed.extend(out)
    assert resumed == whole
    assert any(c.version > 1 for c in whole)


def test_final_candles_keeps_the_highest_version() -> None:
    a = Candle("AAA", B0, M, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    b = a._replace(close=2, volume=2, notional=3, trade_count=2, version=2)
    assert final_candles([b, a]) == [b] == final_candles([a, b])


def test_rollup_rejects_mixed_or_non_multiple_widths() -> None:
    a = Candle("AAA", B0, M, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError):
        rollup([a, a._replace(width_us=SECOND_US)], 5 * M)
    with pytest.raises(ValueError):
        rollup([a], 90 * SECOND_US)
    assert rollup([], 5 * M) == []


def test_rollup_example() -> None:
    parts = [
        Candle("AAA", B0, M, 10, 12, 9, 11, 2, 20, 10, 2, 2),
        Candle("AAA", B0 + M, M, 11, 15, 11, 14, 3, 39, 13, 2, 2),
        Candle("AAA", B0 + M, M, 11, 13, 11, 12, 1, 11, 11, 1, 1),  # superseded version
    ]
    (c,) = rollup(parts, 60 * M)
    start = B0 - B0 % (60 * M)
    assert c == Candle("AAA", start, 60 * M, 10, 15, 9, 14, 5, 59, 12, 4, 4)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        CandleConfig(widths_us=())
    with pytest.raises(ValueError):
        CandleConfig(widths_us=(M, M))
    with pytest.raises(ValueError):
        CandleConfig(allowed_lateness_us=-1)
