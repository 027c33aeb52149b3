"""The backfill's polars candles against the core's candle builder (a differential property).

For random tapes of filter-accepted trades (several symbols and venues, out-of-order, late
beyond the retention horizon, ties in time, large prices and sizes), `split_too_late` +
`final_candles` must give exactly `tapeflow.core.market.candle_batch.build_candles` +
`final_candles`: the same too-late rejections (detail included) and every field of every final
candle.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.backfill_candles import EFFECT, final_candles, split_too_late
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles
from tapeflow.core.market.candle_batch import final_candles as core_final
from tapeflow.core.market.candles import MINUTE_US, SECOND_US, CandleConfig
from tapeflow.core.market.conditions import DEFAULT_CONDITION_RULES, NO_EFFECT
from tapeflow.core.models import Trade

T0 = 1_767_600_000_000_000
CONFIG = CandleConfig(allowed_lateness_us=2 * SECOND_US, retention_us=30 * SECOND_US)


@st.composite
def tapes(draw: st.DrawFn) -> list[Trade]:
    n = draw(st.integers(1, 120))
    trades = []
    clock = T0
    for seq in range(n):
        clock += draw(st.integers(0, 3 * SECOND_US))
        jump = draw(st.sampled_from([0, 0, 0, -1_500_000, -40 * SECOND_US, -90 * SECOND_US]))
        ts = clock + jump
        price = draw(st.sampled_from([ONE, 10**17, 12_345 * ONE // 100, 7]))
        size = draw(st.sampled_from([ONE, 3 * ONE, 10**17, 1]))
        trades.append(Trade(draw(st.sampled_from(["A", "B"])), draw(st.sampled_from(["X", "Y"])),
                            ts, draw(st.integers(0, 3)) if draw(st.booleans()) else seq,
                            price, size, None, ()))
    return trades


def _frame(trades: list[Trade]) -> pl.DataFrame:
    return pl.DataFrame(
        [[*t[:6], t.trade_id, list(t.conditions)] for t in trades],
        schema={"symbol": pl.String, "venue": pl.String, "ts_event": pl.Int64,
                "seq": pl.Int64, "price": pl.Int64, "size": pl.Int64,
                "trade_id": pl.String, "conditions": pl.List(pl.String)},
        orient="row",
    )


@settings(max_examples=200, deadline=None)
@given(tapes())
def test_polars_candles_equal_the_core_builder(trades: list[Trade]) -> None:
    # The builder takes each symbol's trades in order; symbols are independent. The frame is
    # grouped by symbol (as the backfill's is), keeping each symbol's order.
    ordered = sorted(trades, key=lambda t: t.symbol)
    want_candles, want_late = build_candles(ordered, CONFIG)
    kept, late = split_too_late(_frame(ordered), CONFIG)
    assert late == want_late
    for width in (SECOND_US, MINUTE_US):
        want = [c[:2] + c[3:] for c in core_final(want_candles) if c.width_us == width]
        got = [tuple(r) for r in final_candles(kept, width).iter_rows()]
        assert got == want


CONDITIONS = [(), (), ("@",), ("I",), ("Z",), ("F", "I"), ("W",), ("M",)]
"""Regular, odd lot, out of sequence, average price and official close prints (UTP sale
condition processing guidelines: I, Z, W update volume only; M updates nothing)."""


@settings(max_examples=200, deadline=None)
@given(tapes(), st.data())
def test_polars_candles_equal_the_core_builder_with_trade_conditions(
        trades: list[Trade], data: st.DataObject) -> None:
    conditioned = [t._replace(conditions=data.draw(st.sampled_from(CONDITIONS)))
                   for t in trades]
    ordered = sorted(conditioned, key=lambda t: t.symbol)
    want_candles, want_late = build_candles(ordered, CONFIG)
    effects = [DEFAULT_CONDITION_RULES.effect(t.venue, t.conditions) for t in ordered]
    frame = _frame(ordered).with_columns(pl.Series(EFFECT, effects, dtype=pl.Int8))
    kept, late = split_too_late(frame.filter(pl.col(EFFECT) != NO_EFFECT), CONFIG)
    assert late == want_late
    for width in (SECOND_US, MINUTE_US):
        want = [c[:2] + c[3:] for c in core_final(want_candles) if c.width_us == width]
        got = [tuple(r) for r in final_candles(kept, width).iter_rows()]
        assert got == want
