"""`tapeflow backfill`: history files through the stream's rules into ClickHouse, idempotently.

Pipeline (docs/backfill.md):

1. `sources.files.ticks` finds the files, classifies them (trades or quotes) and checks their
   columns; polars scans them lazily.
2. Bounded memory: the symbols are split into N buckets by `hash(symbol) % N`, N chosen so a
   bucket holds about `bucket_rows` rows; each bucket is one lazy, streaming scan of every file
   filtered to its symbols, so a file larger than memory is read N times, never held whole.
   Symbols never share filter or candle state, so buckets are independent.
3. In a bucket (polars, vectorised): timestamps to microseconds, prices and sizes to exact
   scale-8 units, rows split per symbol keeping each file's row order (the arrival order).
4. Per symbol (sequential, `jobs.backfill_fold`): the stream's own per-symbol step
   (`symbol_step.on_arrival_inplace`, then `on_end_inplace`), the functions the market flow's
   partition step calls: the merge of trades and quotes, the tick filter, the candle builder
   (`too_late` and every candle version) and the condition effects. The only per-tick Python
   loop. The last version of each candle is kept (`candle_batch.final_candles`), as the
   store's ReplacingMergeTree would.
5. Clean ticks: each row's verdict as a mask over the bucket's frame (polars).
6. Writes (vectorised): clean ticks and final candles as Arrow tables
   (`sinks.clickhouse.arrow`), rejections through the stream's writer and row mapping
   (`sinks.clickhouse.writer`, `sinks.clickhouse.rows`). Every table is a ReplacingMergeTree
   keyed so a row written twice is one row (candles by version = trade count, equal across
   runs, plus this run's version base so a rerun's candles replace an earlier run's even when
   they hold fewer trades), so running the backfill again over the same files changes no
   FINAL query result but the candles' versions.

`workers > 1` folds buckets in that many processes (the GIL); the parent alone writes, because
the embedded ClickHouse admits one process.
"""

from __future__ import annotations

import gc
import logging
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from jobs.backfill_fold import step_symbol
from sinks.batching import BatchPolicy, call_with_retries
from sinks.clickhouse.arrow import candles_table, ticks_from_units
from sinks.clickhouse.rows import candle_table
from sinks.clickhouse.writer import ClickHouseWriteError, ClickHouseWriter, is_transient
from sinks.versions import candle_version_base
from sources.files.ticks import (
    RECV_COLUMN,
    ROW,
    BackfillInputError,
    InputFile,
    Window,
    collect,
    count_rows,
    normalise,
    open_inputs,
    quotes_of,
    scan,
    trades_of,
)
from tapeflow.core.market.candle_batch import final_candles
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

log = logging.getLogger("tapeflow.jobs.backfill")

__all__ = ["BackfillInputError", "BackfillOptions", "BackfillReport", "Window", "run_backfill"]

Progress = Callable[[int], None]
"""Called with the number of input rows just processed."""


@dataclass(frozen=True)
class BackfillOptions:
    """What to backfill and how; the defaults suit a 2-core machine with 1.5 GB to spare."""

    window: Window = field(default_factory=Window)
    bucket_rows: int = 1_000_000
    """Rows per symbol bucket: bounds memory (measured: 1.2 GB peak for 1M-row buckets,
    230 MB of it the embedded ClickHouse; docs/backfill.md)."""
    workers: int = 1
    """Processes filtering buckets; the parent writes. More than the cores does not help, and
    each worker holds one bucket."""
    config: MarketConfig = DEFAULT_MARKET_CONFIG
    """The market flow's settings: its `filter` and `candles` apply (merge and marks are
    stream-only)."""
    version_base: int | None = None
    """Added to every candle version written (`sinks.versions.candle_version_base`); None: this
    run's own base, so the run's candles replace those of every earlier run."""


@dataclass
class BucketResult:
    """One bucket's output, ready to insert (pickles: workers send it to the parent)."""

    rows: int
    tables: dict[str, pa.Table]
    rejections: list[Rejection]
    gaps: int
    read_s: float
    fold_s: float
    build_s: float


@dataclass
class BackfillReport:
    files: list[InputFile] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    """Files found in a directory or by a glob that hold neither trades nor quotes."""
    buckets: int = 0
    rows: int = 0
    written: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    seconds: float = 0.0
    read_s: float = 0.0
    """Scanning, filtering to the bucket and normalising (polars)."""
    fold_s: float = 0.0
    """The sequential per-symbol step (filter, candles), summed over workers."""
    build_s: float = 0.0
    """The Arrow tables to insert (clean ticks by mask, final candles)."""
    write_s: float = 0.0

    def lines(self) -> list[str]:
        kinds = Counter(f.kind for f in self.files)
        rate = self.rows / self.seconds if self.seconds else 0.0
        out = [f"read {self.rows:,} rows from {kinds['trade']} trade and {kinds['quote']} "
               f"quote file(s) in {self.buckets} bucket(s), {self.seconds:.1f} s "
               f"({rate:,.0f} rows/s)"]
        if self.skipped:
            out.append("skipped (neither trades nor quotes): "
                       + ", ".join(str(p) for p in self.skipped))
        out.append("wrote " + ", ".join(f"{t} {n:,}" for t, n in sorted(self.written.items())))
        if self.rejected:
            out.append("rejected " + ", ".join(f"{r} {n:,}" for r, n in
                                               self.rejected.most_common()))
        out.append(f"time: read {self.read_s:.1f} s, filter + candles (sequential) "
                   f"{self.fold_s:.1f} s, build {self.build_s:.1f} s, "
                   f"write {self.write_s:.1f} s")
        return out


def _bucket_frame(files: Sequence[InputFile], window: Window, bucket: int,
                  buckets: int) -> pl.DataFrame | None:
    frames = []
    for number, file in enumerate(files):
        lf = scan(file, window)
        if buckets > 1:
            lf = lf.filter(pl.col("symbol").hash(seed=0) % buckets == bucket)
        frame = collect(lf, file)
        if frame.height:
            frames.append(normalise(frame, file).with_columns(pl.lit(number).alias("_file")))
    if not frames:
        return None
    # Stable: each symbol keeps the files' order, then each file's row order (arrival order).
    return pl.concat(frames, how="diagonal_relaxed").sort("symbol", "_file", ROW,
                                                          maintain_order=True)


def _recv(frame: pl.DataFrame | None) -> list[int | None] | None:
    if frame is None or RECV_COLUMN not in frame.columns:
        return None
    return frame[RECV_COLUMN].to_list()


def _runs(frame: pl.DataFrame | None) -> dict[str, tuple[int, pl.DataFrame]]:
    """Each symbol's rows of a frame sorted by symbol: (offset, zero-copy slice)."""
    if frame is None:
        return {}
    counts = frame.group_by("symbol", maintain_order=True).agg(pl.len())
    out = {}
    offset = 0
    for symbol, n in counts.iter_rows():
        out[symbol] = (offset, frame.slice(offset, n))
        offset += n
    return out


@contextmanager
def _paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a bucket's ticks go through the step: the ticks and
    the step's outputs are tuples freed by reference counting, and every collection would walk
    all the tick objects alive (measured on one symbol's 300,000 ticks: the step 1.34 s with
    the collector, 1.02 s without; building the arrivals 0.32 s against 0.04 s). As
    `tapeflow.runtime.run.tune_gc` does for the flows (design decision 53)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fold_bucket(files: Sequence[InputFile], window: Window, bucket: int, buckets: int, *,
                config: MarketConfig = DEFAULT_MARKET_CONFIG,
                progress: Progress | None = None, version_base: int = 0) -> BucketResult:
    """Read, normalise and step one bucket of symbols; the tables to insert.

    Memory: the bucket's frames, one symbol's Python ticks and outputs at a time, the bucket's
    final candles and the clean rows."""
    started = time.perf_counter()
    trade_frame = _bucket_frame([f for f in files if f.kind == "trade"], window, bucket, buckets)
    quote_frame = _bucket_frame([f for f in files if f.kind == "quote"], window, bucket, buckets)
    by_trades = _runs(trade_frame)
    by_quotes = _runs(quote_frame)
    trade_ok = [False] * (0 if trade_frame is None else trade_frame.height)
    quote_ok = [False] * (0 if quote_frame is None else quote_frame.height)
    fold_s = 0.0
    rejections: list[Rejection] = []
    candles: list[Candle] = []
    gaps = rows = 0
    with _paused_gc():
        for key in sorted(set(by_trades) | set(by_quotes)):
            t_at, t_frame = by_trades.get(key, (0, None))
            q_at, q_frame = by_quotes.get(key, (0, None))
            trades = trades_of(t_frame) if t_frame is not None else []
            quotes = quotes_of(q_frame) if q_frame is not None else []
            t0 = time.perf_counter()
            result = step_symbol(trades, quotes, _recv(t_frame), _recv(q_frame), config)
            candles.extend(final_candles(result.candles))
            fold_s += time.perf_counter() - t0
            trade_ok[t_at:t_at + len(trades)] = result.trade_ok
            quote_ok[q_at:q_at + len(quotes)] = result.quote_ok
            rejections.extend(result.rejections)
            gaps += result.gaps
            done = len(trades) + len(quotes)
            rows += done
            del trades, quotes, result
            if progress is not None:
                progress(done)
    del by_trades, by_quotes
    t0 = time.perf_counter()
    tables: dict[str, pa.Table] = {}
    if trade_frame is not None:
        clean = trade_frame.filter(pl.Series(trade_ok, dtype=pl.Boolean))
        if clean.height:
            tables["trades"] = ticks_from_units("trades", clean)
        del trade_frame, clean
    if quote_frame is not None:
        clean = quote_frame.filter(pl.Series(quote_ok, dtype=pl.Boolean))
        if clean.height:
            tables["quotes"] = ticks_from_units("quotes", clean)
        del quote_frame, clean
    for width in config.candles.widths_us:
        of_width = [c for c in candles if c.width_us == width]
        if of_width:
            table = candle_table(width)
            tables[table] = candles_table(table, of_width, version_base)
    build_s = time.perf_counter() - t0
    # Reading, normalising and turning columns into core records: all but step and build.
    read_s = time.perf_counter() - started - fold_s - build_s
    return BucketResult(rows, tables, rejections, gaps, read_s, fold_s, build_s)


def _fold_job(args: tuple[Sequence[InputFile], Window, int, int, MarketConfig, int]
              ) -> BucketResult:
    files, window, bucket, buckets, config, base = args
    return fold_bucket(files, window, bucket, buckets, config=config, version_base=base)


class _Writer:
    """Inserts a bucket's tables (Arrow, retried like the stream's writer) and rejections
    (the stream's writer and row mapping)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._rejections = ClickHouseWriter(client, max_rows=50_000, max_age_s=3600.0)
        self._retrying = BatchPolicy(max_rows=1).retrying(is_transient)

    def write(self, result: BucketResult, report: BackfillReport) -> None:
        for table, data in result.tables.items():
            failure = call_with_retries(self._retrying, self._client.insert_arrow, table, data)
            if failure is not None:
                text = str(failure.error).strip().splitlines()
                cause = text[0] if text else type(failure.error).__name__
                raise ClickHouseWriteError(
                    f"insert of {data.num_rows} rows into {table} failed after "
                    f"{failure.attempts} attempt(s): {cause} (did `tapeflow init` run?)",
                    table=table, rows=data.num_rows, attempts=failure.attempts,
                    transient=failure.transient) from failure.error
            report.written[table] += data.num_rows
        self._rejections.add_records(result.rejections)
        self._rejections.flush()
        report.written["rejected_ticks"] += len(result.rejections)
        report.rejected.update(str(r.reason) for r in result.rejections)


def _results(files: list[InputFile], options: BackfillOptions, buckets: int,
             progress: Progress | None) -> Iterator[BucketResult]:
    base = options.version_base or 0
    jobs = [(files, options.window, b, buckets, options.config, base) for b in range(buckets)]
    if options.workers <= 1 or buckets == 1:
        for b in range(buckets):
            yield fold_bucket(files, options.window, b, buckets, config=options.config,
                              progress=progress, version_base=base)
        return
    # spawn, not fork: polars' thread pool does not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        for result in pool.map(_fold_job, jobs):
            if progress is not None:
                progress(result.rows)
            yield result


def run_backfill(settings: Settings, paths: Sequence[str | Path],
                 options: BackfillOptions = BackfillOptions(),
                 progress: Progress | None = None,
                 on_total: Callable[[int], None] | None = None) -> BackfillReport:
    """Backfill `paths` into the ClickHouse database of `settings` (created by `tapeflow init`).

    `on_total` gets the number of rows to process once it is known; `progress` the rows
    processed as they are. Raises `BackfillInputError` for unusable input (one-line message).
    """
    if options.bucket_rows < 1 or options.workers < 1:
        raise ValueError("bucket_rows and workers must be at least 1")
    started = time.perf_counter()
    if options.version_base is None:
        options = replace(options, version_base=candle_version_base())
    files, skipped = open_inputs(paths)
    report = BackfillReport(files=files, skipped=skipped)
    total = sum(count_rows(f, options.window) for f in report.files)
    if on_total is not None:
        on_total(total)
    buckets = max(1, math.ceil(total / options.bucket_rows))
    report.buckets = buckets
    log.info("backfill: %d rows in %d file(s), %d bucket(s)", total, len(report.files), buckets)
    writer = _Writer(open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database))
    for result in _results(report.files, options, buckets, progress):
        t0 = time.perf_counter()
        writer.write(result, report)
        report.write_s += time.perf_counter() - t0
        report.rows += result.rows
        report.gaps += result.gaps
        report.read_s += result.read_s
        report.fold_s += result.fold_s
        report.build_s += result.build_s
    report.seconds = time.perf_counter() - started
    return report
