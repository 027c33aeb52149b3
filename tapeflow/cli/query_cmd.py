"""The `tapeflow query` commands (registered on the app when this module is imported).

Thin: each subcommand parses its options, asks `jobs.query.Analytics`, and renders the
DataFrame with `jobs.query_output.render`. docs/query.md describes the output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.cli.options import End, Format, Output, Start, Symbols

if TYPE_CHECKING:
    import polars as pl

    from jobs.query import Analytics

query_app = typer.Typer(
    help="Answers from the stores as tables, CSV, JSON, JSON Lines or Parquet (decimals exact).\n\n"
    "Example: tapeflow query candles AAPL --interval 5m --start 2024-03-01T14:00Z",
    no_args_is_help=True,
)
app.add_typer(query_app, name="query")

def _run(ctx: typer.Context, ask: Callable[[Analytics], pl.DataFrame], fmt: str,
         output: Path | None, title: str) -> None:
    from jobs.query import Analytics
    from jobs.query_output import FORMATS, render
    from jobs.query_params import QueryInputError

    if fmt not in FORMATS:  # before any store is opened
        raise QueryInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise QueryInputError("--format parquet writes a binary file: give --output FILE")
    with Analytics(settings_of(ctx)) as analytics:
        frame = ask(analytics)
    note = render(frame, fmt, output, out=sys.stdout, title=title)
    if note:
        typer.echo(note, err=True)


@query_app.command("candles")
def candles(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="The symbol, exactly as on the tape.")],
    interval: Annotated[str, typer.Option(help="1s, 1m, 5m, 15m, 1h or 1d.")] = "1m",
    start: Start = None, end: End = None, fmt: Format = "table", output: Output = None,
) -> None:
    """OHLCV candles of one symbol whose bucket starts in [start, end). 5m and coarser are
    rolled up exactly from the 1m candles.

    Example: tapeflow query candles AAPL --interval 5m --start 2024-03-01T14:00Z --format csv
    """
    _run(ctx, lambda q: q.candles(symbol, interval, start, end), fmt, output,
         f"{symbol} {interval} candles")


@query_app.command("vwap")
def vwap(
    ctx: typer.Context,
    symbols: Symbols = None,
    interval: Annotated[
        str | None, typer.Option(help="Per bucket of this interval; unset: one per symbol.")
    ] = None,
    start: Start = None, end: End = None, fmt: Format = "table", output: Output = None,
) -> None:
    """Volume-weighted average price per symbol over [start, end) from the clean trades, or per
    bucket with --interval (from the candles).

    Example: tapeflow query vwap --symbol AAPL --start 2024-03-01T14:00Z --end 2024-03-01T15:00Z
    """
    _run(ctx, lambda q: q.vwap(start, end, symbols or (), interval), fmt, output, "VWAP")


@query_app.command("rejects")
def rejects(
    ctx: typer.Context, symbols: Symbols = None, start: Start = None, end: End = None,
    fmt: Format = "table", output: Output = None,
) -> None:
    """Rejected ticks counted by kind, reason and symbol, most frequent first.

    Example: tapeflow query rejects --start 2024-03-01 --format json
    """
    _run(ctx, lambda q: q.rejects(start, end, symbols or ()), fmt, output, "rejected ticks")


@query_app.command("pnl")
def pnl(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="The account.")],
    symbol: Annotated[
        str | None, typer.Option(help="One symbol's rows; unset: the account-level rows.")
    ] = None,
    start: Start = None, end: End = None, fmt: Format = "table", output: Output = None,
) -> None:
    """P&L history of an account from the ClickHouse pnl_snapshots.

    Example: tapeflow query pnl --account ACC001 --format csv --output pnl.csv
    """
    _run(ctx, lambda q: q.pnl(account, start, end, symbol), fmt, output, f"P&L of {account}")


@query_app.command("positions")
def positions(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only positions not flat.")] = False,
    fmt: Format = "table", output: Output = None,
) -> None:
    """Current positions from Postgres.

    Example: tapeflow query positions --account ACC001 --open
    """
    _run(ctx, lambda q: q.positions(account, symbol, open_only), fmt, output, "positions")


@query_app.command("alerts")
def alerts(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    rules: Annotated[
        list[str] | None, typer.Option("--rule", help="Only this rule (repeatable).")
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="Minimum severity: INFO, WARNING or CRITICAL.")
    ] = None,
    start: Start = None,
    end: End = None,
    source: Annotated[
        str, typer.Option(help="clickhouse (history) or postgres (with acknowledgements).")
    ] = "clickhouse",
    fmt: Format = "table", output: Output = None,
) -> None:
    """Risk alerts, oldest first. For a live stream use `tapeflow alerts --follow`.

    Example: tapeflow query alerts --account ACC001 --severity WARNING --start 2024-03-01
    """
    _run(ctx, lambda q: q.alerts(account, rules=rules or (), severity=severity,
                                       start=start, end=end, source=source), fmt,
         output, "alerts")
