"""Every tick-filter rule, table-driven: for each rule a case it rejects and one it accepts;
sequence gaps reported once, even on a rejected tick; the configuration's validation.

The filter over a stream (references, re-anchoring, late trades, random tapes) is in
test_tick_filter_stream.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.rejections import RejectReason, SequenceGap, TickKind
from tapeflow.core.market.sequence import SeqMode
from tapeflow.core.market.tick_filter import FilterState, filter_quote_inplace, filter_trade_inplace
from tapeflow.core.models import Quote, Trade
from tests.support.market_builders import T0, S, px, quote, quotes_at, trade, trades_at

R = RejectReason
FLAT_100 = trades_at(["100.00"] * 10, start_seq=1)
QUOTE_100 = [quote("100.00", "100.02", ts=T0, seq=1)]
LATER = T0 + 60 * S
FLAT_100_LATER = trades_at(["100.00"] * 10, start_seq=1, ts=LATER)  # newest at LATER + 9
MAX_AGE = DEFAULT_FILTER_CONFIG.outlier_max_age_us or 0
SPREADS_2C = quotes_at([("100.00", "100.02")] * 5, start_seq=1)
UNIQUE = FilterConfig(seq_mode=SeqMode.UNIQUE)
"""A venue that numbers every message: the same number again is a duplicate, whatever the
content (the default, `packet`, also compares the content: test_sequence_modes.py)."""


@dataclass
class Case:
    rule: RejectReason
    name: str
    history: list[Trade | Quote]
    tick: Trade | Quote
    rejected: bool
    config: FilterConfig = field(default=DEFAULT_FILTER_CONFIG)
    now_us: int | None = None


CASES = [
    # unknown_symbol
    Case(R.UNKNOWN_SYMBOL, "not listed", [], trade("1", symbol="ZZZ", seq=1), True,
         FilterConfig(instruments=frozenset({"AAA"}))),
    Case(R.UNKNOWN_SYMBOL, "listed", [], trade("1", symbol="AAA", seq=1), False,
         FilterConfig(instruments=frozenset({"AAA"}))),
    Case(R.UNKNOWN_SYMBOL, "quote not listed", [], quote("1", "2", symbol="ZZZ", seq=1), True,
         FilterConfig(instruments=frozenset({"AAA"}))),
    Case(R.UNKNOWN_SYMBOL, "no list, anything goes", [], trade("1", symbol="ZZZ", seq=1), False),
    # duplicate_seq
    Case(R.DUPLICATE_SEQ, "same seq again", trades_at(["10", "10"], start_seq=1),
         trade("10", seq=2), True, UNIQUE),
    Case(R.DUPLICATE_SEQ, "next seq", trades_at(["10", "10"], start_seq=1),
         trade("10", seq=3), False),
    Case(R.DUPLICATE_SEQ, "quote same seq", quotes_at([("1", "2")], start_seq=7),
         quote("1", "2", seq=7), True),
    Case(R.DUPLICATE_SEQ, "trade and quote numbered separately",
         quotes_at([("10", "10.01")], start_seq=7), trade("10", seq=7), False),
    Case(R.DUPLICATE_SEQ, "same seq other venue", trades_at(["10"], start_seq=5),
         trade("10", seq=5, venue="XNYS"), False),
    Case(R.DUPLICATE_SEQ, "late fill of a gap", [trade("10", seq=1), trade("10", seq=4)],
         trade("10", seq=2), False),
    Case(R.DUPLICATE_SEQ, "late fill twice", [trade("10", seq=1), trade("10", seq=4),
                                              trade("10", seq=2)], trade("10", seq=2), True),
    Case(R.DUPLICATE_SEQ, "older than the first seen, inside the window",
         [trade("10", seq=10)], trade("10", seq=8), False),
    # seq_too_old
    Case(R.SEQ_TOO_OLD, "below the window", trades_at(["10"] * 10, start_seq=1),
         trade("10", seq=6), True, FilterConfig(seq_window=4)),
    Case(R.SEQ_TOO_OLD, "hole inside the window", [trade("10", seq=1), trade("10", seq=10)],
         trade("10", seq=7), False, FilterConfig(seq_window=4)),
    Case(R.SEQ_TOO_OLD, "venue reset: seq back, time on", [trade("10", seq=500, ts=T0)],
         trade("10", seq=1, ts=T0 + 61 * S), False, FilterConfig(seq_window=4)),
    # non_positive_price
    Case(R.NON_POSITIVE_PRICE, "zero", [], trade("0", seq=1), True),
    Case(R.NON_POSITIVE_PRICE, "negative", [], trade("-1", seq=1), True),
    Case(R.NON_POSITIVE_PRICE, "one unit", [], Trade("AAA", "XNAS", T0, 1, 1, px(1)), False),
    Case(R.NON_POSITIVE_PRICE, "quote bid zero", [], quote("0", "1", seq=1), True),
    Case(R.NON_POSITIVE_PRICE, "quote ask zero", [], quote("1", "0", seq=1), True),
    Case(R.NON_POSITIVE_PRICE, "quote positive", [], quote("1", "1.01", seq=1), False),
    # non_positive_size
    Case(R.NON_POSITIVE_SIZE, "zero size", [], trade("1", size=0, seq=1), True),
    Case(R.NON_POSITIVE_SIZE, "tiny size", [], Trade("AAA", "XNAS", T0, 1, px(1), 1), False),
    Case(R.NON_POSITIVE_SIZE, "quote bid size zero", [], quote("1", "2", bid_sz=0, seq=1), True),
    Case(R.NON_POSITIVE_SIZE, "quote ask size neg", [], quote("1", "2", ask_sz=-1, seq=1), True),
    # future_timestamp
    Case(R.FUTURE_TIMESTAMP, "beyond skew", [], trade("1", ts=T0 + 5 * S + 1, seq=1), True,
         now_us=T0),
    Case(R.FUTURE_TIMESTAMP, "exactly at skew", [], trade("1", ts=T0 + 5 * S, seq=1), False,
         now_us=T0),
    Case(R.FUTURE_TIMESTAMP, "no receive time given", [], trade("1", ts=T0 + 99 * S, seq=1),
         False),
    Case(R.FUTURE_TIMESTAMP, "quote beyond skew", [], quote("1", "2", ts=T0 + 6 * S, seq=1),
         True, now_us=T0),
    # crossed_quote
    Case(R.CROSSED_QUOTE, "bid above ask", [], quote("100.01", "100.00", seq=1), True),
    Case(R.CROSSED_QUOTE, "locked is fine", [], quote("100.00", "100.00", seq=1), False),
    # wide_spread (median .02: limit = max(10 x .02, 10 ticks) = .20)
    Case(R.WIDE_SPREAD, "over 10x median", SPREADS_2C, quote("100.00", "100.21", seq=6), True),
    Case(R.WIDE_SPREAD, "at 10x median", SPREADS_2C, quote("100.00", "100.20", seq=6), False),
    Case(R.WIDE_SPREAD, "one unit over 10x median", SPREADS_2C,
         Quote("AAA", "XNAS", T0, 6, px(100), px(1), px("100.20") + 1, px(1)), True),
    Case(R.WIDE_SPREAD, "warm-up: 4 spreads", SPREADS_2C[:4], quote("100", "150", seq=5), False),
    Case(R.WIDE_SPREAD, "tick floor when median is 0",
         quotes_at([("100.00", "100.00")] * 5, start_seq=1),
         quote("100.00", "100.10", seq=6), False),
    Case(R.WIDE_SPREAD, "over tick floor when median is 0",
         quotes_at([("100.00", "100.00")] * 5, start_seq=1),
         quote("100.00", "100.11", seq=6), True),
    # outside_quote (quote 100.00/100.02: tolerance max(1 x .02, 2 ticks) = .02)
    Case(R.OUTSIDE_QUOTE, "above ask + tol", QUOTE_100, trade("100.05", ts=T0 + 1, seq=1), True),
    Case(R.OUTSIDE_QUOTE, "below bid - tol", QUOTE_100, trade("99.97", ts=T0 + 1, seq=1), True),
    Case(R.OUTSIDE_QUOTE, "at ask + tol", QUOTE_100, trade("100.04", ts=T0 + 1, seq=1), False),
    Case(R.OUTSIDE_QUOTE, "one unit over ask + tol", QUOTE_100,
         Trade("AAA", "XNAS", T0 + 1, 1, px("100.04") + 1, px(1)), True),
    Case(R.OUTSIDE_QUOTE, "at bid - tol", QUOTE_100, trade("99.98", ts=T0 + 1, seq=1), False),
    Case(R.OUTSIDE_QUOTE, "quote stale", QUOTE_100,
         trade("100.05", ts=T0 + 10 * S + 1, seq=1), False),
    Case(R.OUTSIDE_QUOTE, "quote newer than trade", QUOTE_100,
         trade("100.05", ts=T0 - 1, seq=1), False),
    Case(R.OUTSIDE_QUOTE, "quote of another venue", QUOTE_100,
         trade("100.05", ts=T0 + 1, seq=1, venue="XNYS"), False),
    Case(R.OUTSIDE_QUOTE, "rule off", QUOTE_100, trade("100.05", ts=T0 + 1, seq=1), False,
         FilterConfig(quote_tolerance_spreads=None)),
    Case(R.OUTSIDE_QUOTE, "rejected quote is not prevailing",
         [*QUOTE_100, quote("101.00", "101.02", ts=T0 + 1, seq=2, bid_sz=0)],
         trade("101.01", ts=T0 + 2, seq=1), True),
    # price_outlier (flat 100: median 100, IQR 0: limit = max(0, 10 ticks, 0.5 %) = 0.50)
    Case(R.PRICE_OUTLIER, "above median + limit", FLAT_100, trade("100.51", seq=11), True),
    Case(R.PRICE_OUTLIER, "below median - limit", FLAT_100, trade("99.49", seq=11), True),
    Case(R.PRICE_OUTLIER, "at median + limit", FLAT_100, trade("100.50", seq=11), False),
    Case(R.PRICE_OUTLIER, "warm-up: 4 prices", FLAT_100[:4], trade("500", seq=5), False),
    Case(R.PRICE_OUTLIER, "IQR widens the limit",
         trades_at(["99", "100", "101", "99", "100", "101", "99", "100", "101"], start_seq=1),
         trade("105.9", seq=10), False),
    Case(R.PRICE_OUTLIER, "beyond the IQR limit",
         trades_at(["99", "100", "101", "99", "100", "101", "99", "100", "101"], start_seq=1),
         trade("106.01", seq=10), True),
    # price_outlier, late trades: judged only within outlier_max_age_us (10 s) of the newest
    # trade in the reference (here LATER + 9)
    Case(R.PRICE_OUTLIER, "late beyond the max age: not judged", FLAT_100_LATER,
         trade("110", ts=LATER + 9 - MAX_AGE - 1, seq=11), False),
    Case(R.PRICE_OUTLIER, "late exactly the max age: judged", FLAT_100_LATER,
         trade("110", ts=LATER + 9 - MAX_AGE, seq=11), True),
    Case(R.PRICE_OUTLIER, "slightly late (1 s): judged", FLAT_100_LATER,
         trade("110", ts=LATER + 9 - S, seq=11), True),
    Case(R.PRICE_OUTLIER, "late, minutes old: not judged", FLAT_100_LATER,
         trade("110", ts=T0, seq=11), False),
    Case(R.PRICE_OUTLIER, "late, no age limit: judged", FLAT_100_LATER,
         trade("110", ts=T0, seq=11), True, FilterConfig(outlier_max_age_us=None)),
    Case(R.PRICE_OUTLIER, "late, shorter age limit", FLAT_100_LATER,
         trade("110", ts=LATER + 9 - S - 1, seq=11), False, FilterConfig(outlier_max_age_us=S)),
]  # fmt: skip

FILTER_REASONS = set(R) - {R.TOO_LATE, R.NON_FINITE}


def _step(
    state: FilterState, tick: Trade | Quote, now_us: int | None, config: FilterConfig
) -> tuple[FilterState, object, SequenceGap | None]:
    if isinstance(tick, Trade):
        return filter_trade_inplace(state, tick, now_us, config)
    return filter_quote_inplace(state, tick, now_us, config)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}: {c.name}")
def test_rule(case: Case) -> None:
    state = FilterState()
    for tick in case.history:
        state, _rejection, _gap = _step(state, tick, None, case.config)
    state, rejection, _gap = _step(state, case.tick, case.now_us, case.config)
    if case.rejected:
        assert rejection is not None, "expected a rejection"
        assert rejection.reason == case.rule
        assert rejection.tick == case.tick
        kind = TickKind.TRADE if isinstance(case.tick, Trade) else TickKind.QUOTE
        assert rejection.kind == kind
        assert state.counters[f"{kind}.{case.rule}"] >= 1
    else:
        assert rejection is None, rejection


def test_every_filter_rule_has_a_rejecting_and_an_accepting_case() -> None:
    rejecting = {c.rule for c in CASES if c.rejected}
    accepting = {c.rule for c in CASES if not c.rejected}
    assert rejecting == FILTER_REASONS
    assert accepting == FILTER_REASONS


def test_gap_is_reported_once_and_the_tick_accepted() -> None:
    state = FilterState()
    state, rejection, gap = filter_trade_inplace(state, trade("10", seq=1), None)
    assert gap is None
    state, rejection, gap = filter_trade_inplace(state, trade("10", seq=5, ts=T0 + 9), None)
    assert rejection is None
    assert gap == SequenceGap(TickKind.TRADE, "XNAS", "AAA", 2, 5, 3, T0 + 9)
    state, rejection, gap = filter_trade_inplace(state, trade("10", seq=3), None)  # late fill
    assert rejection is None and gap is None
    assert state.counters["trade.seq_gaps"] == 1
    assert state.counters["trade.seq_missing"] == 3
    assert state.counters["trade.seq_gap_fills"] == 1


def test_gap_reported_even_when_the_tick_is_rejected() -> None:
    state = FilterState()
    state, _, _ = filter_trade_inplace(state, trade("10", seq=1), None, UNIQUE)
    state, rejection, gap = filter_trade_inplace(state, trade("0", seq=3), None, UNIQUE)
    assert rejection is not None and rejection.reason == R.NON_POSITIVE_PRICE
    assert gap is not None and gap.missing == 1
    # The seq was used: sending it again is a duplicate, not a fresh tick (a venue that
    # numbers every message; test_sequence_modes.py has the packet venue's verdict).
    state, rejection, _ = filter_trade_inplace(state, trade("10", seq=3), None, UNIQUE)
    assert rejection is not None and rejection.reason == R.DUPLICATE_SEQ


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        FilterConfig(outlier_min_history=0)
    with pytest.raises(ValueError):
        FilterConfig(reanchor_count=60)
    with pytest.raises(ValueError):
        FilterConfig(spread_multiple=Decimal("-1"))
    with pytest.raises(ValueError):
        FilterConfig(tick_sizes={"AAA": 0})
    assert FilterConfig(tick_sizes={"AAA": 5}).tick_size("AAA") == 5
    assert FilterConfig().tick_size("AAA") == px("0.01")


