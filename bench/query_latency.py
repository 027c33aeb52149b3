"""Latency of `tapeflow query` reads on the embedded ClickHouse: roll-ups against stored reads.

Not a test: a measurement. Fills a fresh chDB directory with 1 min candles (default 20 symbols x
5 days = 144,000 rows, plausible but synthetic values; the query does not care) through the real
ClickHouse sink, then times, interleaved, in the same process and the same run:

- baseline:  one symbol's stored 1m candles for one day (1,440 rows, `candles_1m` FINAL);
- 5m:        the same day rolled up to 5m in SQL (288 rows from 1,440 parts);
- 1h:        the same day rolled up to 1h (24 rows);
- 1d:        all days of one symbol rolled up to 1d (5 rows from 7,200 parts);
- vwap 5m:   every symbol's 5m vwap for one day (5,760 rows from 28,800 parts).

Each figure is the median (and best) of `--rounds` calls of the Python API
(`Analytics.candles` / `.vwap`), DataFrame built, after one warm-up call; the client is opened
once. The ratio to the baseline shows what the roll-up costs over reading stored rows.

Run:  uv run python bench/query_latency.py [--symbols 20] [--days 5] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.init import init_clickhouse
from jobs.query import Analytics
from sinks.clickhouse.writer import ClickHouseWriter
from tapeflow.core.fixedpoint import ONE, div_round
from tapeflow.core.market.candles import MINUTE_US, Candle
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

DAY0 = 1_767_571_200_000_000  # 2026-01-05T00:00:00Z


def candles(symbols: int, days: int) -> list[Candle]:
    out = []
    for s in range(symbols):
        price = (50 + s) * ONE
        for m in range(days * 1440):
            step = ((m * 7919 + s * 104729) % 11 - 5) * ONE // 100
            o, c = price, price + step
            volume = (100 + m % 37) * ONE
            notional = (o + c) // 2 * volume
            count = 3 + m % 5
            out.append(Candle(f"S{s:03d}", DAY0 + m * MINUTE_US, MINUTE_US, o, max(o, c) + ONE,
                              min(o, c) - ONE, c, volume, notional, div_round(notional, volume),
                              count, count))
            price = c
    return out


def timed(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf-query-bench-") as tmp:
        settings = Settings(home=Path(tmp), clickhouse_dsn=f"chdb://{tmp}/chdb")
        init_clickhouse(settings)
        rows = candles(args.symbols, args.days)
        writer = ClickHouseWriter(open_clickhouse(settings.clickhouse_url(), "tapeflow"),
                                  max_rows=50_000)
        writer.add_records(rows)
        writer.flush()
        day = datetime.fromtimestamp(DAY0 / 1e6, UTC) + timedelta(days=args.days // 2)
        start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
        with Analytics(settings) as q:
            cases: dict[str, Callable[[], object]] = {
                "baseline: 1m stored, 1 symbol, 1 day": lambda: q.candles("S000", "1m", start,
                                                                          end),
                "5m roll-up, 1 symbol, 1 day": lambda: q.candles("S000", "5m", start, end),
                "1h roll-up, 1 symbol, 1 day": lambda: q.candles("S000", "1h", start, end),
                f"1d roll-up, 1 symbol, {args.days} days": lambda: q.candles("S000", "1d"),
                "vwap 5m, all symbols, 1 day": lambda: q.vwap(start, end, interval="5m"),
            }
            results = {name: timed(call, args.rounds) for name, call in cases.items()}
        base = results["baseline: 1m stored, 1 symbol, 1 day"][0]
        print(f"{len(rows):,} 1m candles ({args.symbols} symbols x {args.days} days), chDB, "
              f"median (best) of {args.rounds} rounds")
        for name, (median, best) in results.items():
            print(f"  {name:40} {median:8.1f} ms ({best:.1f})  {median / base:4.2f}x baseline")
        print("command: uv run python bench/query_latency.py "
              f"--symbols {args.symbols} --days {args.days} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
