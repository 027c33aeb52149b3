"""Bytes of market state per symbol, measured with 10,000 symbols.

Not a test: a measurement. The market flow holds, per partition, every symbol's `SymbolState`
(`flows.market_logic.PartitionLogic`: merge queues, the tick filter's per-venue keys with their
price and spread windows and sequence trackers, the candle builder's open and retained buckets,
the mark) plus the symbol's last snapshot pickle and its wall-clock bookkeeping. This script
drives one `PartitionLogic` (the stream's own step, no Kafka, a fixed wall clock) with a seeded
tape of S symbols (default 10,000), each sending one trade and one quote per venue (three) per
second for D seconds of event time (default 90: past the 50-tick price and spread windows and
the 64-number packet memory of every key, so those parts are at their bound), fed one second of
the tape per batch like a partition's polls; the ticks are made one second at a time, so only
the state stays alive. Then:

- the resident memory the partition step added (RSS after `gc.collect()`, minus RSS before
  the tape; allocator overhead and fragmentation included), divided by S;
- where it is (`deep_size`, the objects each part reaches, per symbol): the merge queues, the
  filter, the candle builder's open buckets and retained (emitted) buckets, the snapshot pickle;
- the bound: the candle builder keeps each emitted bucket for `retention_us` (1 h) so a late
  trade can correct it, so the retained part grows with the 1 s (and 1 min) buckets a symbol
  traded in over the last hour, then stops. The bound for a symbol that trades every second is
  the rest + 3,600 retained 1 s buckets + 60 retained 1 min buckets at the measured bytes each.

Run:  uv run python bench/market_memory.py [--symbols S] [--seconds D]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections import deque
from pathlib import Path

from flows.market_logic import PartitionLogic
from sources.kafka.ticks import TickBatch
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candles import DEFAULT_CANDLE_CONFIG
from tapeflow.core.market.symbol_step import MarketConfig, SymbolState
from tapeflow.core.models import Quote, Trade

START_US = 1_767_619_800_000_000  # 2026-01-05T13:30:00Z
TICK = ONE // 100
VENUES = ("XNAS", "XNYS", "BATS")
WALL_US = 1_767_619_800_000_000


def _second(rng: random.Random, names: list[str], mids: list[int], second: int,
            seqs: dict[tuple[str, str, str], int]) -> tuple[TickBatch, TickBatch]:
    """One second of the tape as one trade batch and one quote batch (columns)."""
    t_rows: list[Trade] = []
    q_rows: list[Quote] = []
    base = START_US + second * 1_000_000
    for i, name in enumerate(names):
        mids[i] = max(100, mids[i] + rng.randint(-1, 1))
        mid = mids[i] * TICK
        jitter = i % 997
        for k, venue in enumerate(VENUES):
            key = ("q", venue, name)
            seqs[key] = seq = seqs.get(key, 0) + 1
            q_rows.append(Quote(name, venue, base + k * 1_000 + jitter, seq, mid - TICK,
                                100 * ONE, mid + TICK, 100 * ONE))
        for k, venue in enumerate(VENUES):
            key = ("t", venue, name)
            seqs[key] = seq = seqs.get(key, 0) + 1
            t_rows.append(Trade(name, venue, base + 500_000 + k * 1_000 + jitter, seq, mid,
                                100 * ONE, None, ()))
    return _batch("Trade", t_rows), _batch("Quote", q_rows)


def _batch(kind: str, rows: list[Trade] | list[Quote]) -> TickBatch:
    fields = Trade._fields if kind == "Trade" else Quote._fields
    columns = {name: [getattr(r, name) for r in rows] for name in fields}
    offsets = list(range(len(rows)))
    recv = [r.ts_event for r in rows]
    return TickBatch(kind, f"md.{kind.lower()}s", 0, columns, offsets, recv)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def deep_size(seen: set[int], *roots: object) -> int:
    """Bytes of `roots` and of everything they reach that `seen` does not hold yet
    (containers, slots, instance dicts); shared objects are counted once. (Only live objects
    go into `seen`: a temporary's id could be reused.)"""
    total = 0
    stack = list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, deque)):
            stack.extend(item)
        elif not isinstance(item, (str, bytes, int, float, bool)) and item is not None:
            if hasattr(item, "__dict__"):
                stack.append(vars(item))
            for name in getattr(type(item), "__slots__", ()):
                if hasattr(item, name):
                    stack.append(getattr(item, name))
    return total


def _parts(states: dict[str, SymbolState], pickled: dict[str, bytes]) -> dict[str, float]:
    """Mean bytes per symbol of each part of the state (shared strings counted once)."""
    seen: set[int] = {id(name) for name in states}  # the symbol strings: counted apart
    parts = {"merge queues": 0, "filter": 0, "candles, open": 0, "candles, retained": 0,
             "mark and the rest": 0}
    retained = {w: 0 for w in DEFAULT_CANDLE_CONFIG.widths_us}
    for state in states.values():
        parts["merge queues"] += deep_size(seen, state.trades, state.quotes)
        parts["filter"] += deep_size(seen, state.filter)
        for sym in state.candles.symbols.values():
            for w in sym.widths:
                retained[w.width] += len(w.emitted)
                parts["candles, retained"] += deep_size(seen, w.emitted, w.heap)
        parts["candles, open"] += deep_size(seen, state.candles)
        parts["mark and the rest"] += deep_size(seen, state)
    n = len(states)
    out = {name: size / n for name, size in parts.items()}
    out["symbol name"] = sum(sys.getsizeof(name) for name in states) / n
    out["snapshot pickle"] = sum(sys.getsizeof(raw) for raw in pickled.values()) / n
    for width, count in retained.items():
        out[f"retained buckets {width // 1_000_000} s"] = count / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=90)
    args = parser.parse_args()
    print(f"command: uv run python bench/market_memory.py --symbols {args.symbols} "
          f"--seconds {args.seconds}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    n = args.symbols
    rng = random.Random(11)
    names = [f"S{i:05d}" for i in range(n)]
    mids = [rng.randint(2_000, 50_000) for _ in names]
    seqs: dict[tuple[str, str, str], int] = {}
    gc.collect()
    before = _rss()
    logic = PartitionLogic(MarketConfig(), None, wall_us=lambda: WALL_US)
    started = time.perf_counter()
    for second in range(args.seconds):
        t_batch, q_batch = _second(rng, names, mids, second, seqs)
        logic.on_batch([t_batch, q_batch])  # outputs dropped: the sinks take them
        del t_batch, q_batch
    step_s = time.perf_counter() - started
    logic.snapshot()  # as Bytewax takes one at each epoch: every symbol's pickle is held
    seqs.clear()
    gc.collect()
    total = (_rss() - before) / n
    ticks = n * args.seconds * 6
    print(f"{n:,} symbols, {args.seconds} s of market, {ticks:,} ticks stepped in "
          f"{step_s:.0f} s (making the ticks included)")
    print(f"resident memory added by the partition step: {total:,.0f} B per symbol "
          f"({total * n / 2**20:,.0f} MiB in all)")
    parts = _parts(logic._states, logic._pickled)
    for name, value in parts.items():
        unit = "" if name.startswith("retained buckets") else " B"
        print(f"    {name:<24} {value:>10,.0f}{unit}")
    per_bucket = parts["candles, retained"] / max(1.0, sum(
        v for k, v in parts.items() if k.startswith("retained buckets")))
    rest = total - parts["candles, retained"]
    retained_max = sum(DEFAULT_CANDLE_CONFIG.retention_us // w
                       for w in DEFAULT_CANDLE_CONFIG.widths_us)
    bound = rest + retained_max * per_bucket
    print(f"a retained bucket: about {per_bucket:,.0f} B; bound for a symbol trading every "
          f"second for the 1 h retention: {rest:,.0f} + {retained_max:,} x {per_bucket:,.0f} "
          f"= about {bound:,.0f} B ({bound / 2**20:,.1f} MiB)")
    print(f"load average {os.getloadavg()[0]:.1f} at end (a shared machine)")


if __name__ == "__main__":
    main()
