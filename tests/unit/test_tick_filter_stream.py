"""The tick filter over a stream: re-anchoring on a level shift, references that rejected
prices and spreads still move, late trades and older quotes; determinism, snapshots and
counters on random tapes; the filter against the naive rules (sort every window).

The table of rules, one rejecting and one accepting case each, is in
test_tick_filter_rules.py."""

from __future__ import annotations

import pickle
import random
from decimal import Decimal

import pytest

from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.market.tick_filter import (
    FilterState,
    filter_quote_inplace,
    filter_trade_inplace,
    run_filter,
)
from tapeflow.core.models import Quote, Trade
from tests.support.market_builders import T0, S, px, quote, quotes_at, trade, trades_at

R = RejectReason
LATER = T0 + 60 * S


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
