"""Throughput of the pure core: tick filter + 1-minute candles, one core, plain CPython.

Not a test: a measurement. Generates N trades in memory (seeded random walk over ~100 symbols,
one venue each, in event-time order with a little jitter, a few bad prints and duplicates so
the reject paths run too), then times, in the same process and on the same data:

- baseline: a bare loop that reads each trade's price and size (the cost of iterating);
- filter only;
- 1 m candles only;
- filter + 1 m candles (the target: >= 300,000 trades/s);
- filter + 1 s and 1 m candles (the default widths).

Run:  uv run python bench/core_throughput.py [--trades N] [--symbols S]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candles import (
    MINUTE_US,
    SECOND_US,
    CandleConfig,
    CandleState,
    add_trade_inplace,
    flush_inplace,
)
from tapeflow.core.market.tick_filter import FilterState, filter_trade_inplace
from tapeflow.core.models import Trade

START_US = 1_700_000_000_000_000
TICK = ONE // 100


def generate(n: int, symbols: int, seed: int = 7) -> list[Trade]:
    """A plausible tape: ~n trades, Poisson-ish arrivals, +-few-tick steps, lots of 1-500."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    venues = [("XNAS", "XNYS", "BATS")[i % 3] for i in range(symbols)]
    prices = [rng.randint(500, 50_000) * TICK for _ in range(symbols)]
    seqs = [0] * symbols
    trades: list[Trade] = []
    ts = START_US
    mean_gap_us = 3_600 * SECOND_US // n  # about one trading hour in total
    for _ in range(n):
        ts += int(rng.expovariate(1.0 / mean_gap_us)) + 1
        i = rng.randrange(symbols)
        step = rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2)) * TICK
        prices[i] = max(TICK, prices[i] + step)
        seqs[i] += 1
        price = prices[i]
        roll = rng.random()
        if roll < 0.0005:
            price = price * 10  # fat finger
        jitter = rng.randint(0, 2_000) if roll > 0.98 else 0  # late by up to 2 ms
        size = rng.randint(1, 500) * ONE
        trade = Trade(names[i], venues[i], ts - jitter, seqs[i], price, size, None, ())
        trades.append(trade)
        if roll < 0.0002:
            trades.append(trade)  # duplicate delivery
    return trades


def baseline(trades: list[Trade]) -> int:
    total = 0
    for t in trades:
        total += t.price + t.size
    return total


def filter_only(trades: list[Trade]) -> int:
    state = FilterState()
    rejected = 0
    for t in trades:
        state, rejection, _gap = filter_trade_inplace(state, t, None)
        if rejection is not None:
            rejected += 1
    return rejected


def candles_only(trades: list[Trade], config: CandleConfig) -> int:
    state = CandleState()
    emitted = 0
    for t in trades:
        state, candles, _rejection = add_trade_inplace(state, t, None, config)
        emitted += len(candles)
    state, candles = flush_inplace(state)
    return emitted + len(candles)


def filter_and_candles(trades: list[Trade], config: CandleConfig) -> int:
    fstate = FilterState()
    cstate = CandleState()
    emitted = 0
    for t in trades:
        fstate, rejection, _gap = filter_trade_inplace(fstate, t, None)
        if rejection is None:
            cstate, candles, _late = add_trade_inplace(cstate, t, None, config)
            emitted += len(candles)
    cstate, candles = flush_inplace(cstate)
    return emitted + len(candles)


def measure(name: str, fn: Callable[[], int], n: int, rounds: int) -> float:
    """Best of `rounds`, by process CPU time (this machine is shared; wall time shown too)."""
    best_cpu = best_wall = float("inf")
    result = 0
    for _ in range(rounds):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    rate = n / best_cpu
    print(
        f"{name:<26} {rate:>11,.0f} trades/s  {1e9 / rate:6.0f} ns/trade"
        f"  (cpu {best_cpu:.3f} s, wall {best_wall:.3f} s, best of {rounds}; out={result})"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trades = generate(args.trades, args.symbols)
    n = len(trades)
    one_minute = CandleConfig(widths_us=(MINUTE_US,))
    both = CandleConfig()
    print(f"python {sys.version.split()[0]}, {n:,} trades, {args.symbols} symbols")
    print(f"command: uv run python bench/core_throughput.py --trades {args.trades}")
    measure("baseline (bare loop)", lambda: baseline(trades), n, args.rounds)
    measure("filter", lambda: filter_only(trades), n, args.rounds)
    measure("candles 1m", lambda: candles_only(trades, one_minute), n, args.rounds)
    target = measure(
        "filter + candles 1m", lambda: filter_and_candles(trades, one_minute), n, args.rounds
    )
    measure("filter + candles 1s,1m", lambda: filter_and_candles(trades, both), n, args.rounds)
    verdict = "meets" if target >= 300_000 else "BELOW"
    print(f"target 300,000 trades/s (filter + candles 1m): {verdict}")


if __name__ == "__main__":
    main()
