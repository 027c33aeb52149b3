"""The `tapeflow backfill` command (registered on the app when this module is imported).

Thin: parse the options, call `jobs.backfill.run_backfill`, show progress, print the report.
A rich progress bar with rows/s when stderr is a terminal; plain log lines otherwise (a job
runner's log should not fill with redraws).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.cli.options import End, Start, Symbols
from tapeflow.text import terminal_lines

_LOG_EVERY_S = 5.0


def _micros(text: str | None, option: str) -> int | None:
    """An ISO date or timestamp (naive means UTC) as microseconds since the epoch."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} takes an ISO date or time, not {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class _PlainProgress:
    """Progress as log lines on stderr, at most one every few seconds."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self._started = time.monotonic()
        self._last = self._started

    def set_total(self, total: int) -> None:
        self.total = total
        print(f"backfill: {total:,} rows to process", file=sys.stderr, flush=True)

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self._last >= _LOG_EVERY_S or self.done >= self.total:
            self._last = now
            rate = self.done / max(now - self._started, 1e-9)
            print(f"backfill: {self.done:,}/{self.total:,} rows, {rate:,.0f} rows/s",
                  file=sys.stderr, flush=True)


@app.command()
def backfill(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        help="Parquet or CSV files, globs or directories of trades and quotes.")],
    symbols: Symbols = None,
    start: Start = None,
    end: End = None,
    bucket_rows: Annotated[int, typer.Option(
        min=1, help="Rows per symbol bucket: bounds memory (1M rows: about 1.2 GB).")] = 1_000_000,
    workers: Annotated[int, typer.Option(
        min=1, help="Processes filtering symbol buckets (each holds a bucket).")] = 1,
) -> None:
    """Load history through the stream's tick filter and candle rules into ClickHouse.

    Idempotent: running it again over the same files changes no query result.
    Columns are the Avro field names of Trade or Quote (docs/backfill.md).

    Example: tapeflow backfill data/trades.parquet data/quotes.parquet -s AAPL -s MSFT
    """
    from jobs.backfill import BackfillOptions, Window, run_backfill

    names = frozenset(symbols) if symbols else None
    window = Window(names, _micros(start, "--start"), _micros(end, "--end"))
    settings = settings_of(ctx)
    # The stream's own bounds (sequence window, lateness, late horizon) judge the history.
    options = BackfillOptions(window=window, bucket_rows=bucket_rows, workers=workers,
                              config=settings.market.core_config(batch=True))
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (TextColumn("backfill"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("rows", total=None, rate="-")
            began = time.monotonic()

            def advance(rows: int) -> None:
                bar.advance(task, rows)
                done = bar.tasks[0].completed
                rate = done / max(time.monotonic() - began, 1e-9)
                bar.update(task, rate=f"{rate:,.0f}")

            report = run_backfill(settings, [Path(p) for p in paths], options,
                                  progress=advance,
                                  on_total=lambda n: bar.update(task, total=n))
    else:
        plain = _PlainProgress()
        report = run_backfill(settings, [Path(p) for p in paths], options,
                              progress=plain.advance, on_total=plain.set_total)
    for line in report.lines():
        typer.echo(terminal_lines(line))
