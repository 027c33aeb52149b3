"""The `tapeflow chart` command (registered on the app when this module is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.cli.options import End, Start
from tapeflow.text import terminal_safe


@app.command("chart")
def chart(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="The symbol, exactly as on the tape.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="FILE.html (self-contained) or FILE.png.")
    ],
    interval: Annotated[str, typer.Option(help="1s, 1m, 5m, 15m, 1h or 1d.")] = "1m",
    start: Start = None,
    end: End = None,
) -> None:
    """Draw a candlestick chart with volume, for people who would rather look than read.

    Example: tapeflow chart AAPL --interval 5m --start 2024-03-01T14:00Z --output aapl.html
    """
    from tapeflow.extras import require

    require("matplotlib")
    from jobs.chart import chart as draw_chart

    result = draw_chart(settings_of(ctx), symbol, output, interval=interval, start=start,
                        end=end)
    typer.echo(terminal_safe(result.line()))
