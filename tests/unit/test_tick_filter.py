"""Every tick-filter rule, table-driven: for each rule a case it rejects and one it accepts."""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.rejections import RejectReason, SequenceGap, TickKind
from tapeflow.core.market.tick_filter import (
    FilterState,
    filter_quote_inplace,
    filter_trade_inplace,
    run_filter,
)
from tapeflow.core.models import Quote, Trade
from tests.unit.market_builders import T0, S, px, quote, quotes_at, trade, trades_at

R = RejectReason
FLAT_100 = trades_at(["100.00"] * 10, start_seq=1)
QUOTE_100 = [quote("100.00", "100.02", ts=T0, seq=1)]
LATER = T0 + 60 * S
FLAT_100_LATER = trades_at(["100.00"] * 10, start_seq=1, ts=LATER)  # newest at LATER + 9
MAX_AGE = DEFAULT_FILTER_CONFIG.outlier_max_age_us or 0
SPREADS_2C = quotes_at([("100.00", "100.02")] * 5, start_seq=1)


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
         trade("10", seq=2), True),
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
    state, _, _ = filter_trade_inplace(state, trade("10", seq=1), None)
    state, rejection, gap = filter_trade_inplace(state, trade("0", seq=3), None)
    assert rejection is not None and rejection.reason == R.NON_POSITIVE_PRICE
    assert gap is not None and gap.missing == 1
    # The seq was used: sending it again is a duplicate, not a fresh tick.
    state, rejection, _ = filter_trade_inplace(state, trade("10", seq=3), None)
    assert rejection is not None and rejection.reason == R.DUPLICATE_SEQ


def test_level_shift_is_accepted_on_the_mth_agreeing_outlier() -> None:
    state = FilterState()
    for t in trades_at(["100.00"] * 20, start_seq=1):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        assert rejection is None
    verdicts = []
    for t in trades_at(["110.00", "110.02", "109.98", "110.01", "110.00", "110.03"], start_seq=21):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        verdicts.append(None if rejection is None else rejection.reason)
    m = DEFAULT_FILTER_CONFIG.reanchor_count
    assert verdicts == [R.PRICE_OUTLIER] * (m - 1) + [None, None]
    assert state.counters["trade.reanchors"] == 1
    # The reference moved: the old level is now the outlier.
    state, rejection, _ = filter_trade_inplace(state, trade("100.00", seq=27), None)
    assert rejection is not None and rejection.reason == R.PRICE_OUTLIER


def test_disagreeing_outliers_never_reanchor() -> None:
    state = FilterState()
    for t in trades_at(["100.00"] * 20, start_seq=1):
        state, _, _ = filter_trade_inplace(state, t, None)
    for t in trades_at(["110", "120", "110", "120", "110", "120", "110"], start_seq=21):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        assert rejection is not None and rejection.reason == R.PRICE_OUTLIER
    assert state.counters.get("trade.reanchors", 0) == 0


def test_an_accepted_trade_breaks_the_run() -> None:
    state = FilterState()
    for t in trades_at(["100.00"] * 20, start_seq=1):
        state, _, _ = filter_trade_inplace(state, t, None)
    prices = ["110", "110", "110", "110", "100", "110"]
    reasons = []
    for t in trades_at(prices, start_seq=21):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        reasons.append(None if rejection is None else rejection.reason)
    assert reasons == [R.PRICE_OUTLIER] * 4 + [None, R.PRICE_OUTLIER]


def test_rejected_prices_still_move_the_reference() -> None:
    # Re-anchoring effectively off (m = k): only the rolling reference can accept the new level.
    config = FilterConfig(outlier_window=10, reanchor_count=10)
    state = FilterState()
    for t in trades_at(["100"] * 10, start_seq=1):
        state, _, _ = filter_trade_inplace(state, t, None, config)
    reasons = []
    for t in trades_at(["110"] * 6, start_seq=11):
        state, rejection, _ = filter_trade_inplace(state, t, None, config)
        reasons.append(None if rejection is None else rejection.reason)
    # After three rejected 110s the window is 7 x 100, 3 x 110: q1 = s[2] = 100, q3 = s[7] = 110,
    # so the limit is 3 x 10 and 110 (10 from the median of 100) is within it. Were rejected
    # prices left out of the reference, every 110 would be rejected for ever.
    assert reasons == [R.PRICE_OUTLIER] * 3 + [None] * 3
    assert state.counters.get("trade.reanchors", 0) == 0


def test_wide_spread_reference_includes_rejected_quotes() -> None:
    config = FilterConfig(spread_window=10)
    state = FilterState()
    pairs = [("100.00", "100.02")] * 10 + [("100.00", "101.00")] * 6
    reasons = []
    for q in quotes_at(pairs, start_seq=1):
        state, rejection, _ = filter_quote_inplace(state, q, None, config)
        reasons.append(None if rejection is None else rejection.reason)
    assert reasons == [None] * 10 + [R.WIDE_SPREAD] * 5 + [None]


def test_older_quote_does_not_replace_the_prevailing_one() -> None:
    state = FilterState()
    state, _, _ = filter_quote_inplace(state, quote("100.00", "100.02", ts=T0 + 10, seq=2), None)
    state, rejection, _ = filter_quote_inplace(state, quote("90.00", "90.02", ts=T0, seq=1), None)
    assert rejection is None  # accepted (a gap fill), but the book stays at 100
    state, rejection, _ = filter_trade_inplace(state, trade("100.01", ts=T0 + 11, seq=1), None)
    assert rejection is None


def test_a_late_trade_neither_joins_the_reference_nor_breaks_the_run() -> None:
    state = FilterState()
    for t in trades_at(["100.00"] * 20, start_seq=1, ts=LATER):
        state, _, _ = filter_trade_inplace(state, t, None)
    # Four fresh outliers at 110 start a re-anchor run.
    reasons = []
    for t in trades_at(["110"] * 4, start_seq=21, ts=LATER + 20):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        reasons.append(None if rejection is None else rejection.reason)
    # Late prints at the old level, minutes old: accepted, not judged, not added, and the run
    # of 110s goes on (a judged 100 would have been accepted and broken it).
    for i, t in enumerate(trades_at(["100.00", "90", "130"], start_seq=25, ts=T0)):
        state, rejection, _ = filter_trade_inplace(state, t, None)
        assert rejection is None
        assert state.counters["trade.outlier_skipped_stale"] == i + 1
    state, rejection, _ = filter_trade_inplace(state, trade("110", ts=LATER + 30, seq=28), None)
    reasons.append(None if rejection is None else rejection.reason)
    assert reasons == [R.PRICE_OUTLIER] * 4 + [None]
    assert state.counters["trade.reanchors"] == 1
    assert state.keys[("XNAS", "AAA")].prices == [px(110)] * 5  # 90 and 130 never joined


def test_a_late_trade_is_still_held_to_the_deterministic_rules_and_an_older_quote() -> None:
    state = FilterState()
    state, _, _ = filter_quote_inplace(state, quote("100.00", "100.02", ts=T0, seq=1), None)
    for t in trades_at(["100.01"] * 10, start_seq=1, ts=LATER):
        state, _, _ = filter_trade_inplace(state, t, None)
    # 59 s before the newest trade: no outlier rule, but the quote at T0 is older than it.
    state, rejection, _ = filter_trade_inplace(state, trade("100.50", ts=T0 + S, seq=11), None)
    assert rejection is not None and rejection.reason == R.OUTSIDE_QUOTE
    state, rejection, _ = filter_trade_inplace(state, trade("0", ts=T0 + S, seq=12), None)
    assert rejection is not None and rejection.reason == R.NON_POSITIVE_PRICE
    # Older than the quote: the rule does not apply, the price is not judged at all.
    state, rejection, _ = filter_trade_inplace(state, trade("100.50", ts=T0 - S, seq=13), None)
    assert rejection is None
    assert state.counters["trade.outlier_skipped_stale"] == 2


def _tape(seed: int, n: int = 3000) -> list[Trade | Quote]:
    rng = random.Random(seed)
    ticks: list[Trade | Quote] = []
    price = {"AAA": px("100"), "BBB": px("20")}
    seqs = {("AAA", "t"): 0, ("BBB", "t"): 0, ("AAA", "q"): 0, ("BBB", "q"): 0}
    ts = T0
    for _ in range(n):
        ts += rng.randint(0, 50_000)
        sym = rng.choice(("AAA", "BBB"))
        price[sym] = max(1, price[sym] + rng.randint(-3, 3) * px("0.01"))
        kind = "q" if rng.random() < 0.4 else "t"
        seqs[(sym, kind)] += rng.choice((1, 1, 1, 1, 1, 2, 0, -1))
        seq = seqs[(sym, kind)]
        p = price[sym] * (10 if rng.random() < 0.01 else 1)
        if kind == "t":
            ticks.append(Trade(sym, "XNAS", ts, seq, p, px(rng.randint(0, 9)), None, ()))
        else:
            spread = rng.choice((0, 1, 2, 2, 3, 40, -1)) * px("0.01")
            ticks.append(Quote(sym, "XNAS", ts, seq, p, px(1), p + spread, px(rng.randint(0, 3))))
    return ticks


@pytest.mark.parametrize("seed", range(5))
def test_filter_is_deterministic_and_causal(seed: int) -> None:
    ticks = _tape(seed)
    first = run_filter(ticks, now_us=T0 + 10**9)
    second = run_filter(ticks, now_us=T0 + 10**9)
    assert first == second
    reasons = {d.rejection.reason for d in first if d.rejection is not None}
    assert len(reasons) >= 5, reasons  # the tape exercises many rules
    cut = len(ticks) // 3
    assert run_filter(ticks[:cut], now_us=T0 + 10**9) == first[:cut]  # no look-ahead


def test_state_survives_a_snapshot() -> None:
    ticks = _tape(11)
    whole = run_filter(ticks)
    cut = len(ticks) // 2
    state = FilterState()
    head = run_filter(ticks[:cut], state=state)
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    tail = run_filter(ticks[cut:], state=restored)
    assert head + tail == whole


def test_counters_add_up() -> None:
    ticks = _tape(3)
    state = FilterState()
    decisions = run_filter(ticks, state=state)
    rejected = sum(1 for d in decisions if not d.accepted)
    per_reason = sum(v for k, v in state.counters.items() if k.split(".")[1] in set(R))
    accepted = state.counters["trade.accepted"] + state.counters["quote.accepted"]
    assert per_reason == rejected
    assert accepted == len(ticks) - rejected


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


def _naive_outliers(
    prices: list[int], config: FilterConfig, tick: int, times: list[int]
) -> list[bool]:
    """Rule 7 the slow, obvious way: sort the last k prices for every trade."""
    window: list[int] = []
    run: list[int] = []
    out = []
    m = config.reanchor_count
    newest = None
    max_age = config.outlier_max_age_us
    for p, ts in zip(prices, times, strict=True):
        if newest is not None and max_age is not None and newest - ts > max_age:
            out.append(False)  # late: not judged, not added, run untouched
            continue
        newest = ts if newest is None else max(newest, ts)
        outlier = False
        limit = 0
        if len(window) >= config.outlier_min_history:
            s = sorted(window)
            n = len(s)
            median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
            q = (n - 1) // 4
            iqr_limit = (s[n - 1 - q] - s[q]) * Decimal(config.outlier_iqr_multiple)
            pct_limit = median * Decimal(config.outlier_median_fraction)
            limit = max(config.outlier_min_ticks * tick, int(iqr_limit), int(pct_limit))
            outlier = abs(p - median) > limit
        reanchored = False
        if outlier:
            run = [*run, p][-m:]
            if len(run) == m and max(run) - min(run) <= limit:
                reanchored = True
                window = list(run)
                run = []
        else:
            run = []
        if not reanchored:
            window = [*window, p][-config.outlier_window :]
        out.append(outlier and not reanchored)
    return out


def _naive_wide(spreads: list[int], config: FilterConfig, tick: int) -> list[bool]:
    out = []
    for i, sp in enumerate(spreads):
        hist = sorted(spreads[max(0, i - config.spread_window) : i])
        wide = False
        if len(hist) >= config.spread_min_history:
            n = len(hist)
            median = hist[n // 2] if n % 2 else (hist[n // 2 - 1] + hist[n // 2]) // 2
            limit = max(
                int(median * Decimal(config.spread_multiple)), config.spread_min_ticks * tick
            )
            wide = sp > limit
        out.append(wide)
    return out


TIGHT = FilterConfig(
    outlier_window=10,
    outlier_iqr_multiple=Decimal("0.5"),
    outlier_min_ticks=1,
    outlier_median_fraction=Decimal(0),
    reanchor_count=3,
    spread_window=10,
    spread_multiple=Decimal("1.2"),
    spread_min_ticks=1,
)

TREND = FilterConfig(
    outlier_window=10,
    outlier_iqr_multiple=Decimal(0),
    outlier_min_ticks=5,
    outlier_median_fraction=Decimal(0),
    reanchor_count=3,
)


@pytest.mark.parametrize("seed", range(40))
def test_shortcut_gives_exactly_the_naive_verdicts(seed: int) -> None:
    rng = random.Random(seed)
    config = rng.choice(
        [
            DEFAULT_FILTER_CONFIG,
            FilterConfig(outlier_window=7, outlier_min_history=3, reanchor_count=3),
            FilterConfig(
                outlier_window=20, outlier_median_fraction=Decimal(0), outlier_min_ticks=1
            ),
            FilterConfig(spread_window=6, spread_min_history=2, spread_multiple=Decimal("1.5")),
            TIGHT,
            TREND,
        ]
    )
    tick = px("0.01")
    price = rng.randint(100, 100_000) * tick
    prices = []
    noisy = config is TIGHT  # thresholds close to typical moves: many borderline verdicts
    for _ in range(1500):
        if noisy:
            prices.append(px(100) + rng.randint(-40, 40) * tick + rng.randint(0, 3) * 37 * tick)
            continue
        if config is TREND:  # the median moves within a window; limit == band exactly
            price += rng.randint(-2, 4) * tick
            prices.append(price + rng.randint(-6, 6) * tick)
            continue
        r = rng.random()
        if r < 0.02:
            price = max(tick, price + rng.choice((-1, 1)) * rng.randint(20, 2000) * tick)  # shift
        price = max(tick, price + rng.randint(-4, 4) * tick)
        prices.append(price * rng.choice((10, 1)) if r > 0.99 else price)
    # Event times 0.1 s apart, 2 % of the trades late by up to a minute (some within the max
    # age). Drawn separately, so the prices and spreads are those of the other draws.
    late = random.Random(seed + 1000)
    times = [
        T0 + i * S // 10 - (late.randint(0, 60 * S) if late.random() < 0.02 else 0)
        for i in range(len(prices))
    ]
    trades = [
        Trade("AAA", "XNAS", ts, i + 1, p, px(1))
        for i, (p, ts) in enumerate(zip(prices, times, strict=True))
    ]
    state = FilterState()
    got = [d.rejection is not None for d in run_filter(trades, config, state=state)]
    assert got == _naive_outliers(prices, config, tick, times)
    assert sum(got) > 5
    assert state.counters.get("trade.outlier_skipped_stale", 0) > 0

    choices = tuple(range(12)) if noisy else (0, 1, 1, 2, 2, 3, 5, 30, 200)
    spreads = [rng.choice(choices) * tick for _ in range(1500)]
    quotes = [
        Quote("AAA", "XNAS", T0 + i, i + 1, px(100), px(1), px(100) + sp, px(1))
        for i, sp in enumerate(spreads)
    ]
    got = [d.rejection is not None for d in run_filter(quotes, config)]
    assert got == _naive_wide(spreads, config, tick)
    assert sum(got) > 0
