"""The `tapeflow chart` command (registered on the app when this module is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tapeflow.cli.app import _settings, app


@app.command("chart")
def chart(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="The symbol, exactly as on the tape.")],
    out: Annotated[Path, typer.Option(help="FILE.html (self-contained) or FILE.png.")],
    interval: Annotated[str, typer.Option(help="1s, 1m, 5m, 15m, 1h or 1d.")] = "1m",
    start: Annotated[
        str | None, typer.Option(help="ISO-8601 start, inclusive (UTC if no offset).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="ISO-8601 end, exclusive (UTC if no offset).")
    ] = None,
) -> None:
    """Draw a candlestick chart with volume, for people who would rather look than read.

    Example: tapeflow chart AAPL --interval 5m --start 2024-03-01T14:00Z --out aapl.html
    """
    from jobs.chart import chart as draw_chart
    from jobs.query_params import QueryInputError

    try:
        result = draw_chart(_settings(ctx), symbol, out, interval=interval, start=start, end=end)
    except QueryInputError as exc:
        typer.echo(f"tapeflow: error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.line())
