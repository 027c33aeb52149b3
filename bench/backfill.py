"""Backfill throughput and peak memory on Parquet files of trades and quotes.

Not a test: a measurement. Writes (vectorised, numpy) a seeded tape of N trades (default
5,000,000) and Q quotes (15,000,000) over S symbols (100) and H hours (2) of one day: one
event stream in time order, per symbol a random walk of the mid on a 0.01 grid, quotes around
it and trades within them, three venues with their own sequence numbers per kind, 0.05 % zero
prices, re-sent sequence numbers and crossed quotes so reject paths run. Prices and sizes are
decimal128(18, 8), ts_event timestamp[us, UTC], like `tapeflow generate`. Then, in this same
run:

- baseline 1: a bare polars scan of the files (every column read, sums, no Python per row);
- baseline 2: the decimal columns read with the backfill's exact unit conversion
  (`to_units_series`);
- the backfill, `tapeflow backfill FILES` as a child process into a fresh embedded ClickHouse
  (`tapeflow init` schema): wall time, ticks/s for filter + clean ticks + candles written,
  the job's own split of its time, and the child's peak RSS (`ru_maxrss`; with workers, the
  largest single process, and the total of the parent and its workers sampled from /proc).

`--repo DIR` runs the backfill of another checkout (an export of an earlier commit: the
baseline before a change) on the same files; `--data DIR` keeps the tape to reuse it.

Run:  uv run python bench/backfill.py [--trades N] [--quotes Q] [--symbols S] [--hours H]
      [--workers 1,2] [--data DIR] [--repo DIR] [--bucket-rows N] [--fold-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.backfill import BackfillOptions, fold_bucket
from sources.files.ticks import count_rows, open_inputs, to_units_series

REPO = Path(__file__).resolve().parent.parent
START_US = 1_767_619_800_000_000  # 2026-01-05T13:30:00Z, US open
TICK = 1_000_000  # 0.01 in scale-8 units
VENUES = np.array(["XNAS", "XNYS", "BATS"])


def _decimal(units: np.ndarray) -> pa.Array:
    """Scale-8 integer units as decimal128(18, 8), without a Python object per value."""
    return (pa.array(units, pa.int64()).cast(pa.decimal128(19, 0)).view(pa.decimal128(19, 8))
            .cast(pa.decimal128(18, 8)))


def _seqs(key: np.ndarray) -> np.ndarray:
    """1, 2, 3... per key, in row order."""
    n = len(key)
    order = np.lexsort((np.arange(n), key))
    ksorted = key[order]
    first = np.r_[0, np.flatnonzero(np.diff(ksorted)) + 1]
    counts = np.diff(np.r_[first, n])
    seq = np.empty(n, dtype=np.int64)
    seq[order] = np.arange(n) - np.repeat(first, counts) + 1
    return seq


def write_tape(path: Path, n: int, symbols: int, hours: float, *, seed: int = 7,
               quotes: int = 0, quote_path: Path | None = None) -> None:
    """`n` trades into `path` and `quotes` quotes into `quote_path`: one event stream in time
    order, each symbol's mid a random walk over its events; a quote is the mid +- a half
    spread of 1-4 ticks, a trade is priced within it (so the outside-quote rule mostly
    accepts). Faults: 0.05 % zero trade prices, 0.05 % re-sent sequence numbers per kind,
    0.05 % crossed quotes."""
    rng = np.random.default_rng(seed)
    total = n + quotes
    span = int(hours * 3600 * 1_000_000)
    sym = rng.integers(0, symbols, total)
    ts = START_US + np.sort(rng.integers(0, span, total))
    venue = rng.integers(0, 3, total)
    is_quote = np.zeros(total, dtype=bool)
    is_quote[rng.choice(total, quotes, replace=False)] = True
    # Random walk per symbol: cumulative +-1..3 ticks within each symbol's rows (in time order).
    steps = rng.integers(-3, 4, total)
    order = np.lexsort((np.arange(total), sym))
    walk = np.empty(total, dtype=np.int64)
    cum = np.cumsum(steps[order])
    starts = np.searchsorted(sym[order], np.arange(symbols))
    starts = np.minimum(starts, total - 1)
    walk[order] = cum
    walk -= (cum[starts] - steps[order][starts])[sym]
    del order, cum, steps
    base = rng.integers(2_000, 50_000, symbols)  # 20.00 to 500.00
    mid = np.maximum(base[sym] + walk // 4, 100).astype(np.int64)
    del walk
    half = rng.integers(1, 5, total)
    names = np.array([f"S{i:03d}" for i in range(symbols)])

    t = ~is_quote
    price = (mid[t] + rng.integers(-1, 2, n) * np.minimum(half[t], 1)) * TICK
    price[rng.random(n) < 0.0005] = 0
    seq = _seqs(sym[t] * 3 + venue[t])
    dup = np.flatnonzero(rng.random(n) < 0.0005)
    dup = dup[dup > 0]
    seq[dup] = seq[dup] - 1  # a re-sent number: duplicate_seq (or a gap-fill)
    table = pa.table({
        "symbol": pa.array(names[sym[t]]),
        "venue": pa.array(VENUES[venue[t]]),
        "ts_event": pa.array(ts[t], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "seq": pa.array(seq),
        "price": _decimal(price),
        "size": _decimal(rng.integers(1, 501, n).astype(np.int64) * 100_000_000),
        "trade_id": pa.nulls(n, pa.string()),
        "conditions": pa.array([[]] * n, pa.list_(pa.string())),
    })
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)
    del table, price, seq
    if not quotes or quote_path is None:
        return
    q = is_quote
    qmid, qhalf = mid[q], half[q]
    bid = (qmid - qhalf) * TICK
    ask = (qmid + qhalf) * TICK
    crossed = rng.random(quotes) < 0.0005
    bid[crossed], ask[crossed] = ask[crossed], bid[crossed]
    seq = _seqs(sym[q] * 3 + venue[q])
    dup = np.flatnonzero(rng.random(quotes) < 0.0005)
    dup = dup[dup > 0]
    seq[dup] = seq[dup] - 1
    table = pa.table({
        "symbol": pa.array(names[sym[q]]),
        "venue": pa.array(VENUES[venue[q]]),
        "ts_event": pa.array(ts[q], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "seq": pa.array(seq),
        "bid_px": _decimal(bid),
        "bid_sz": _decimal(rng.integers(1, 50, quotes).astype(np.int64) * 100 * 100_000_000),
        "ask_px": _decimal(ask),
        "ask_sz": _decimal(rng.integers(1, 50, quotes).astype(np.int64) * 100 * 100_000_000),
    })
    pq.write_table(table, quote_path, compression="zstd", row_group_size=1 << 20)


def baseline_scan(paths: list[Path]) -> float:
    """Every column of every file read by polars (streaming), reduced to sums: no Python per
    row."""
    t0 = time.perf_counter()
    for path in paths:
        lf = pl.scan_parquet(path)
        decimals = [c for c in ("price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz")
                    if c in lf.collect_schema().names()]
        lf.select(
            pl.len(), *(pl.col(c).sum() for c in decimals), pl.col("ts_event").max(),
            pl.col("seq").sum(), pl.col("symbol").n_unique(), pl.col("venue").n_unique(),
        ).collect(engine="streaming")
    return time.perf_counter() - t0


def baseline_units(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for path in paths:
        names = pl.scan_parquet(path).collect_schema().names()
        decimals = [c for c in ("price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz")
                    if c in names]
        frame = pl.read_parquet(path, columns=decimals)
        for c in decimals:
            to_units_series(frame[c], c).sum()
        del frame
    return time.perf_counter() - t0


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and its children, from /proc (kB)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        return 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_backfill(paths: list[Path], workers: int, home: Path, repo: Path,
                 extra: list[str]) -> tuple[float, int, int, str]:
    env = {**os.environ, "TAPEFLOW_HOME": str(home),
           "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{home / 'chdb'}",
           "PYTHONPATH": str(repo)}
    subprocess.run([sys.executable, "-c", "from jobs.init import init_clickhouse\n"
                    "from tapeflow.settings import Settings\ninit_clickhouse(Settings())"],
                   cwd=repo, env=env, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [sys.executable, "-m", "tapeflow.cli", "backfill", *map(str, paths),
           "--workers", str(workers), *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    peak_tree = 0

    def sample() -> None:
        nonlocal peak_tree
        while proc.poll() is None:
            peak_tree = max(peak_tree, _tree_rss_kb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"backfill failed ({proc.returncode}): {' '.join(cmd)}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before), peak_tree, out


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fold_only(paths: list[Path], bucket_rows: int) -> None:
    """The backfill's reading and stepping of every bucket in this process, without the
    embedded ClickHouse and its inserts: its own peak RSS, to tell the two apart."""
    files, _ = open_inputs(paths)
    window = BackfillOptions().window
    total = sum(count_rows(f, window) for f in files)
    buckets = max(1, -(-total // bucket_rows))
    t0 = time.perf_counter()
    for bucket in range(buckets):
        fold_bucket(files, window, bucket, buckets)
    print(f"fold only (no ClickHouse), {buckets} buckets: {time.perf_counter() - t0:6.2f} s  "
          f"{total / (time.perf_counter() - t0):12,.0f} ticks/s  peak RSS {_hwm_mb():,.0f} MB "
          "(a child process of its own)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5_000_000)
    parser.add_argument("--quotes", type=int, default=15_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--workers", default="1")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the tape in this directory and reuse it when it is there")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose `tapeflow backfill` runs (a baseline: an "
                             "export of an earlier commit)")
    parser.add_argument("--bucket-rows", type=int, default=None)
    parser.add_argument("--fold-only", action="store_true",
                        help="also read and step every bucket in a child process without "
                             "ClickHouse (this checkout's code), for its peak RSS")
    parser.add_argument("--fold-child", nargs="+", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fold_child:
        fold_only(args.fold_child, args.bucket_rows or 1_000_000)
        return
    print(f"command: uv run python bench/backfill.py --trades {args.trades} --quotes "
          f"{args.quotes} --symbols {args.symbols} --hours {args.hours} --workers "
          f"{args.workers}" + (f" --bucket-rows {args.bucket_rows}" if args.bucket_rows else "")
          + (f" --repo {args.repo}" if args.repo != REPO else ""))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    extra = ["--bucket-rows", str(args.bucket_rows)] if args.bucket_rows else []
    with tempfile.TemporaryDirectory(prefix="tapeflow-bench-") as tmp:
        data = args.data if args.data is not None else Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        name = f"{args.trades}t-{args.quotes}q-{args.symbols}s-{args.hours}h"
        path = data / f"trades-{name}.parquet"
        quote_path = data / f"quotes-{name}.parquet"
        paths = [path, quote_path] if args.quotes else [path]
        if not all(p.exists() for p in paths):
            t0 = time.perf_counter()
            write_tape(path, args.trades, args.symbols, args.hours, quotes=args.quotes,
                       quote_path=quote_path)
            print(f"wrote {args.trades:,} trades and {args.quotes:,} quotes, {args.symbols} "
                  f"symbols, {args.hours} h: {sum(p.stat().st_size for p in paths) / 1e6:.0f} "
                  f"MB in {time.perf_counter() - t0:.1f} s")
        ticks = args.trades + args.quotes
        scan_s = baseline_scan(paths)
        print(f"baseline 1, bare polars scan:        {scan_s:6.2f} s  "
              f"{ticks / scan_s:12,.0f} rows/s")
        units_s = baseline_units(paths)
        print(f"baseline 2, read + exact units:      {units_s:6.2f} s  "
              f"{ticks / units_s:12,.0f} rows/s")
        for workers in (int(w) for w in args.workers.split(",")):
            elapsed, peak_kb, tree_kb, out = run_backfill(
                paths, workers, Path(tmp) / f"home{workers}", args.repo, extra)
            print(f"backfill --workers {workers}:                {elapsed:6.2f} s  "
                  f"{ticks / elapsed:12,.0f} ticks/s  peak RSS {peak_kb / 1024:,.0f} MB "
                  f"(largest process), {tree_kb / 1024:,.0f} MB (all its processes, sampled)")
            for line in out.strip().splitlines():
                print(f"    {line}")
        if args.fold_only:
            sys.stdout.flush()
            subprocess.run([sys.executable, __file__, "--fold-child", *map(str, paths),
                            *extra], cwd=REPO, check=True)
        print(f"load average {os.getloadavg()[0]:.1f} at end (a shared machine: other "
              "engineers' tests ran meanwhile)")


if __name__ == "__main__":
    main()
