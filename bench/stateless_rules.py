"""Would the stateless tick rules pay as column expressions? The most they could save, measured.

Not a test: a measurement. The tick filter's stateless rules (non-positive price or size,
future timestamp, crossed quote) come *after* the sequence rule, which is stateful: a tick they
refuse still advances its (venue, symbol, kind) sequence tracker and may report a gap, so every
tick still has to go through the per-symbol step in order, and a column verdict could only
replace the few comparisons each rule costs inside it (and a precomputed verdict would have to
travel with the tick). This script times, on the same seeded tape of one symbol's trades and
quotes (three venues, in event-time order):

- the per-symbol step the stream and the backfill run (`jobs.backfill_fold.step_symbol`:
  merge, filter, candles);
- those comparisons alone, in a Python loop over the same ticks: the most that moving them
  out of the step could save;
- the same rules as polars column expressions over the columns: what they would cost instead.

Run:  uv run python bench/stateless_rules.py [--ticks N]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import polars as pl

from jobs.backfill_fold import step_symbol
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import Quote, Trade

START_US = 1_767_619_800_000_000
TICK = ONE // 100
VENUES = ("XNAS", "XNYS", "BATS")


def tape(n: int) -> tuple[list[Trade], list[Quote]]:
    rng = random.Random(5)
    trades: list[Trade] = []
    quotes: list[Quote] = []
    seqs = dict.fromkeys([(k, v) for k in "tq" for v in VENUES], 0)
    mid = 10_000
    for i in range(n):
        mid = max(100, mid + rng.randint(-1, 1))
        venue = VENUES[i % 3]
        ts = START_US + i * 1_000
        bad = rng.random() < 0.001
        if rng.random() < 0.25:
            seqs["t", venue] += 1
            trades.append(Trade("S", venue, ts, seqs["t", venue], 0 if bad else mid * TICK,
                                100 * ONE, None, ()))
        else:
            seqs["q", venue] += 1
            bid, ask = (mid + 1) * TICK, (mid - 1) * TICK
            if not bad:
                bid, ask = ask, bid
            quotes.append(Quote("S", venue, ts, seqs["q", venue], bid, 100 * ONE, ask, 100 * ONE))
    return trades, quotes


def checks_in_python(trades: list[Trade], quotes: list[Quote], t_recv: list[int],
                     q_recv: list[int], skew: int) -> int:
    refused = 0
    for (_s, _v, ts, _q, price, size, _i, _c), recv in zip(trades, t_recv, strict=True):
        if price <= 0 or size <= 0 or ts > recv + skew:
            refused += 1
    for (_s, _v, ts, _q, bid, bid_sz, ask, ask_sz), recv in zip(quotes, q_recv, strict=True):
        if bid <= 0 or ask <= 0 or bid_sz <= 0 or ask_sz <= 0 or ts > recv + skew or bid > ask:
            refused += 1
    return refused


def checks_in_polars(trades: pl.DataFrame, quotes: pl.DataFrame, skew: int) -> int:
    t = trades.select(((pl.col("price") <= 0) | (pl.col("size") <= 0)
                       | (pl.col("ts_event") > pl.col("ts_recv") + skew)).sum())
    q = quotes.select(((pl.col("bid_px") <= 0) | (pl.col("ask_px") <= 0)
                       | (pl.col("bid_sz") <= 0) | (pl.col("ask_sz") <= 0)
                       | (pl.col("ts_event") > pl.col("ts_recv") + skew)
                       | (pl.col("bid_px") > pl.col("ask_px"))).sum())
    return int(t.item()) + int(q.item())


def best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400_000)
    args = parser.parse_args()
    print(f"command: uv run python bench/stateless_rules.py --ticks {args.ticks}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    trades, quotes = tape(args.ticks)
    t_frame = pl.DataFrame([t[:6] for t in trades], orient="row",
                           schema=["symbol", "venue", "ts_event", "seq", "price", "size"],
                           ).with_columns(pl.col("ts_event").alias("ts_recv"))
    q_frame = pl.DataFrame(quotes, orient="row", schema=list(Quote._fields)
                           ).with_columns(pl.col("ts_event").alias("ts_recv"))
    skew = 5_000_000
    n = len(trades) + len(quotes)
    t_recv = [t.ts_event for t in trades]  # receive times: the future-timestamp rule runs
    q_recv = [q.ts_event for q in quotes]
    step_s = best(lambda: step_symbol(trades, quotes, t_recv, q_recv))
    py_s = best(lambda: checks_in_python(trades, quotes, t_recv, q_recv, skew))
    pl_s = best(lambda: checks_in_polars(t_frame, q_frame, skew))
    print(f"{n:,} ticks ({len(trades):,} trades, {len(quotes):,} quotes), best of 3:")
    print(f"  the per-symbol step (merge, filter, candles): {step_s:7.3f} s "
          f"({n / step_s:12,.0f} ticks/s)")
    print(f"  the stateless comparisons alone, in Python:   {py_s:7.3f} s "
          f"({py_s / step_s:6.1%} of the step: the most a column pass could save)")
    print(f"  the same rules as polars column expressions:  {pl_s:7.3f} s "
          f"({pl_s / step_s:6.1%} of the step: what it would cost instead)")
    print(f"load average {os.getloadavg()[0]:.1f} at end (a shared machine)")


if __name__ == "__main__":
    main()
