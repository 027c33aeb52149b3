"""Backfill throughput and peak memory on a 5-million-trade Parquet file.

Not a test: a measurement. Writes (vectorised, numpy) a seeded tape of N trades (default
5,000,000; trades only, no quotes) over S symbols (100) and H hours (2) of one day: per
symbol a random walk on a 0.01 grid, sizes in lots of 1-500, three venues with their own
sequence numbers, rows in event-time order, 0.05 % zero prices and 0.05 % duplicates so reject
paths run. Prices and sizes are decimal128(18, 8), ts_event timestamp[us, UTC], like
`tapeflow generate`. Then, in this same run:

- baseline 1: a bare polars scan of the file (every column read, sums, no Python per row);
- baseline 2: the same scan with the backfill's exact unit conversion (`to_units_series`);
- the backfill, `tapeflow backfill FILE` as a child process into a fresh embedded ClickHouse
  (`tapeflow init` schema), with `--workers 1` and then `--workers 2`: wall time, trades/s
  for filter + clean trades + candles written, the job's own split of its time (read,
  sequential fold, build, write), and the child's peak RSS (`ru_maxrss`; with workers, the
  largest single process, and the total of the parent and its workers sampled from /proc).

Run:  uv run python bench/backfill.py [--trades N] [--symbols S] [--hours H] [--workers 1,2]
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

from sources.files.ticks import to_units_series

REPO = Path(__file__).resolve().parent.parent
START_US = 1_767_619_800_000_000  # 2026-01-05T13:30:00Z, US open
TICK = 1_000_000  # 0.01 in scale-8 units
VENUES = np.array(["XNAS", "XNYS", "BATS"])


def write_tape(path: Path, n: int, symbols: int, hours: float, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    span = int(hours * 3600 * 1_000_000)
    sym = rng.integers(0, symbols, n)
    ts = START_US + np.sort(rng.integers(0, span, n))
    venue = rng.integers(0, 3, n)
    # Random walk per symbol: cumulative +-1..3 ticks within each symbol's rows (in time order).
    order = np.lexsort((np.arange(n), sym))
    steps = rng.integers(-3, 4, n)
    walk = np.empty(n, dtype=np.int64)
    walk[order] = np.cumsum(steps[order])
    sym_sorted = sym[order]
    starts = np.searchsorted(sym_sorted, np.arange(symbols))
    base_walk = np.cumsum(steps[order])[starts] - steps[order][starts]
    walk -= base_walk[sym]
    base = rng.integers(2_000, 50_000, symbols)  # 20.00 to 500.00
    price_ticks = np.maximum(base[sym] + walk // 4, 100)
    price = price_ticks.astype(np.int64) * TICK
    size = rng.integers(1, 501, n).astype(np.int64) * 100_000_000
    bad = rng.random(n) < 0.0005
    price[bad] = 0
    # Sequence numbers per (venue, symbol), in time order.
    key = sym * 3 + venue
    korder = np.lexsort((np.arange(n), key))
    ksorted = key[korder]
    first = np.r_[0, np.flatnonzero(np.diff(ksorted)) + 1]
    counts = np.diff(np.r_[first, n])
    seq_sorted = np.arange(n) - np.repeat(first, counts) + 1
    seq = np.empty(n, dtype=np.int64)
    seq[korder] = seq_sorted
    dup = np.flatnonzero(rng.random(n) < 0.0005)
    dup = dup[dup > 0]
    seq[dup] = seq[dup] - 1  # a re-sent number: duplicate_seq (or a gap-fill)
    names = np.array([f"S{i:03d}" for i in range(symbols)])
    table = pa.table({
        "symbol": pa.array(names[sym]),
        "venue": pa.array(VENUES[venue]),
        "ts_event": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "seq": pa.array(seq),
        "price": pa.array(price).cast(pa.decimal128(19, 0)).view(pa.decimal128(19, 8))
        .cast(pa.decimal128(18, 8)),
        "size": pa.array(size).cast(pa.decimal128(19, 0)).view(pa.decimal128(19, 8))
        .cast(pa.decimal128(18, 8)),
        "trade_id": pa.nulls(n, pa.string()),
        "conditions": pa.array([[]] * n, pa.list_(pa.string())),
    })
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)


def baseline_scan(path: Path) -> float:
    t0 = time.perf_counter()
    pl.scan_parquet(path).select(
        pl.len(), pl.col("price").sum(), pl.col("size").sum(), pl.col("ts_event").max(),
        pl.col("seq").sum(), pl.col("symbol").n_unique(), pl.col("venue").n_unique(),
    ).collect(engine="streaming")
    return time.perf_counter() - t0


def baseline_units(path: Path) -> float:
    t0 = time.perf_counter()
    frame = pl.read_parquet(path, columns=["price", "size"])
    to_units_series(frame["price"], "price").sum()
    to_units_series(frame["size"], "size").sum()
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


def run_backfill(path: Path, workers: int, home: Path) -> tuple[float, int, int, str]:
    env = {**os.environ, "TAPEFLOW_HOME": str(home),
           "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{home / 'chdb'}"}
    subprocess.run([sys.executable, "-c", "from jobs.init import init_clickhouse\n"
                    "from tapeflow.settings import Settings\ninit_clickhouse(Settings())"],
                   cwd=REPO, env=env, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [sys.executable, "-m", "tapeflow.cli", "backfill", str(path),
           "--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    print(f"command: uv run python bench/backfill.py --trades {args.trades} "
          f"--symbols {args.symbols} --hours {args.hours} --workers {args.workers}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="tapeflow-bench-") as tmp:
        path = Path(tmp) / "trades.parquet"
        t0 = time.perf_counter()
        write_tape(path, args.trades, args.symbols, args.hours)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.trades:,} trades, {args.symbols} symbols, {args.hours} h: "
              f"{size_mb:.0f} MB in {time.perf_counter() - t0:.1f} s")
        scan_s = baseline_scan(path)
        print(f"baseline 1, bare polars scan:        {scan_s:6.2f} s  "
              f"{args.trades / scan_s:12,.0f} rows/s")
        units_s = baseline_units(path)
        print(f"baseline 2, read + exact units:      {units_s:6.2f} s  "
              f"{args.trades / units_s:12,.0f} rows/s")
        for workers in (int(w) for w in args.workers.split(",")):
            elapsed, peak_kb, tree_kb, out = run_backfill(path, workers,
                                                          Path(tmp) / f"home{workers}")
            print(f"backfill --workers {workers}:                {elapsed:6.2f} s  "
                  f"{args.trades / elapsed:12,.0f} trades/s  peak RSS {peak_kb / 1024:,.0f} MB "
                  f"(largest process), {tree_kb / 1024:,.0f} MB (all its processes, sampled)")
            for line in out.strip().splitlines():
                print(f"    {line}")
        print(f"load average {os.getloadavg()[0]:.1f} at end (a shared machine: other "
              "engineers' tests ran meanwhile)")


if __name__ == "__main__":
    main()
