"""Trade conditions decide what a clean print updates (issue 14): the CTA/UTP eligibility rules.

The default table follows the UTP Trade Data Feed specification's sale-condition processing
guidelines (consolidated: "update last" -> prices, "update volume" -> volume); CTA uses the same
codes. Before, `conditions` was carried and ignored: an odd lot or an out-of-sequence print set
the candle's close and high and became the mark.
"""

from __future__ import annotations

import pytest

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import MINUTE_US, SECOND_US, CandleConfig
from tapeflow.core.market.conditions import (
    DEFAULT_CONDITION_RULES,
    NO_EFFECT,
    REGULAR,
    VOLUME_ONLY,
    ConditionRules,
    ConditionTable,
)
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.rollup import rollup
from tapeflow.core.market.symbol_step import (
    Arrival,
    MarketConfig,
    MarkTrade,
    SymbolState,
    on_arrival_inplace,
    on_end_inplace,
)
from tapeflow.core.models import Trade

T0 = 1_767_623_400_000_000
ONE_MINUTE = CandleConfig(widths_us=(MINUTE_US,))


def _t(price: int, i: int, *conditions: str, venue: str = "XNAS", size: int = 100) -> Trade:
    return Trade("AAA", venue, T0 + i * 1000, i + 1, price * ONE, size * ONE, None, conditions)


@pytest.mark.parametrize(("conditions", "effect"), [
    # UTP processing guidelines, consolidated columns (update last / update volume):
    ((), REGULAR),                   # no condition: a regular sale
    (("@",), REGULAR),               # @ regular sale: yes / yes
    (("F",), REGULAR),               # F intermarket sweep: yes / yes
    (("O",), REGULAR),               # O opening prints: yes / yes
    (("5",), REGULAR),               # 5 re-opening prints: yes / yes
    (("L",), REGULAR),               # L sold last (late, in sequence): yes / yes
    (("I",), VOLUME_ONLY),           # I odd lot: no / yes
    (("Z",), VOLUME_ONLY),           # Z sold out of sequence: no (first-trade exception) / yes
    (("U",), VOLUME_ONLY),           # U extended hours sold out of sequence: no / yes
    (("T",), VOLUME_ONLY),           # T form T: no / yes
    (("W",), VOLUME_ONLY),           # W average price: no / yes
    (("4",), VOLUME_ONLY),           # 4 derivatively priced: no / yes
    (("M",), NO_EFFECT),             # M market center official close: no / no
    (("Q",), NO_EFFECT),             # Q market center official open: no / no
    (("F", "I"), VOLUME_ONLY),       # several conditions: the most restrictive wins
    (("@", "M"), NO_EFFECT),
    (("?",), REGULAR),               # a code the table does not know: regular by default
])
def test_the_default_table(conditions: tuple[str, ...], effect: int) -> None:
    assert DEFAULT_CONDITION_RULES.effect("XNAS", conditions) == effect


def test_a_venue_has_its_own_table_and_tables_refuse_price_without_volume() -> None:
    rules = ConditionRules(venues={"XCME": ConditionTable({"0": REGULAR, "1": VOLUME_ONLY},
                                                          unknown=NO_EFFECT)})
    assert rules.effect("XCME", ("1",)) == VOLUME_ONLY
    assert rules.effect("XCME", ("I",)) == NO_EFFECT
    assert rules.effect("XNAS", ("I",)) == VOLUME_ONLY
    with pytest.raises(ValueError, match="vwap"):
        ConditionTable({"9": 2})


def test_volume_only_prints_count_volume_and_set_no_price() -> None:
    trades = [_t(100, 0), _t(101, 1), _t(150, 2, "Z"), _t(90, 3, "I", size=7), _t(102, 4)]
    (candle,) = final_candles(build_candles(trades, ONE_MINUTE)[0])
    assert (candle.open, candle.high, candle.low, candle.close) == (
        100 * ONE, 102 * ONE, 100 * ONE, 102 * ONE)
    assert candle.volume == 407 * ONE
    assert candle.trade_count == 5
    assert candle.notional == (100 + 101 + 102) * 100 * ONE * ONE + 150 * 100 * ONE * ONE \
        + 90 * 7 * ONE * ONE


def test_a_bucket_of_volume_only_prints_has_no_prices_and_rolls_up() -> None:
    trades = [_t(100, 0), _t(99, 2000, "I"), _t(98, 2001, "I"), _t(101, 50_000)]
    candles = final_candles(build_candles(trades, CandleConfig(widths_us=(SECOND_US,)))[0])
    assert [(c.open, c.close, c.volume) for c in candles] == [
        (100 * ONE, 100 * ONE, 100 * ONE), (None, None, 200 * ONE),
        (101 * ONE, 101 * ONE, 100 * ONE)]
    assert candles[1].vwap == 9850 * ONE // 100
    (minute,) = rollup(candles, MINUTE_US)
    (direct,) = final_candles(build_candles(trades, ONE_MINUTE)[0])
    assert minute == direct
    assert (minute.open, minute.close, minute.high, minute.low) == (
        100 * ONE, 101 * ONE, 101 * ONE, 100 * ONE)
    assert rollup(candles[1:2], MINUTE_US)[0].open is None


def test_a_print_with_no_effect_is_a_clean_trade_without_a_candle() -> None:
    state = SymbolState()
    config = MarketConfig(merge_max_wait_us=0, mark_interval_us=0)
    out = []
    for trade in [_t(100, 0), _t(101, 1, "M")]:
        state, emitted = on_arrival_inplace(state, Arrival(trade, None), None, config)
        out += emitted
    state, emitted = on_end_inplace(state, config)
    out += emitted
    assert [o for o in out if isinstance(o, Trade)] == [_t(100, 0), _t(101, 1, "M")]
    candles = [o for o in out if not isinstance(o, Trade | MarkTrade)]
    assert {c.trade_count for c in candles} == {1}
    assert [m.trade.price for m in out if isinstance(m, MarkTrade)] == [100 * ONE]


def test_the_mark_is_the_last_print_that_sets_prices() -> None:
    config = MarketConfig(merge_max_wait_us=0, mark_interval_us=0)
    state = SymbolState()
    marks = []
    for trade in [_t(100, 0), _t(140, 1, "Z"), _t(90, 2, "I")]:
        state, out = on_arrival_inplace(state, Arrival(trade, None), None, config)
        marks += [o.trade.price for o in out if isinstance(o, MarkTrade)]
    assert marks == [100 * ONE]
    # A venue whose table makes every code regular marks with each print.
    regular = ConditionRules(venues={"XNAS": ConditionTable({}, unknown=REGULAR)})
    config = MarketConfig(filter=FilterConfig(conditions=regular), merge_max_wait_us=0,
                          mark_interval_us=0)
    state, marks = SymbolState(), []
    for trade in [_t(100, 0), _t(140, 1, "Z"), _t(90, 2, "I")]:
        state, out = on_arrival_inplace(state, Arrival(trade, None), None, config)
        marks += [o.trade.price for o in out if isinstance(o, MarkTrade)]
    assert marks == [100 * ONE, 140 * ONE, 90 * ONE]
