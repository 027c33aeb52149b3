"""Candlestick chart with volume, as a PNG or a self-contained HTML page (`tapeflow chart`).

The candles come from `jobs.query.Analytics.candles`, so a chart shows exactly what
`tapeflow query candles` returns (coarse intervals rolled up from 1m). matplotlib draws with
floats, which is fine for pixels; the numbers a reader can copy are exact: the HTML embeds the
candles as JSON with decimal strings.

HTML: one file, no network: the figure as inline SVG in which every candle body is one element
`<g id="candle-N">` (N in bucket order, its volume bar `volume-N`), followed by the candles as
JSON in `<script type="application/json" id="candles">`, so a page or a test can find each
candle and its prices.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib.dates as mdates
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from jobs.query import Analytics
from jobs.query_output import cell
from jobs.query_params import QueryInputError, interval_us
from tapeflow.settings import Settings

UP, DOWN = "#26a69a", "#ef5350"
SUFFIXES = (".html", ".htm", ".png")
US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, slots=True)
class ChartResult:
    path: Path
    candles: int

    def line(self) -> str:
        return f"{self.candles} candles drawn to {self.path}"


def chart(settings: Settings, symbol: str, out: Path, *, interval: str = "1m",
          start: str | None = None, end: str | None = None) -> ChartResult:
    """Draw `symbol`'s candles of [start, end) to `out` (.html or .png). An empty range is a
    `QueryInputError` and writes no file."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise QueryInputError(f"--output must end in .html or .png, not {out.name!r}")
    width_us = interval_us(interval)
    with Analytics(settings) as analytics:
        frame = analytics.candles(symbol, interval, start, end)
    if frame.is_empty():
        raise QueryInputError(f"no {interval} candles for {symbol!r} in the range asked "
                              "(check --start/--end and the symbol); no chart written")
    figure = draw(frame, symbol, interval, width_us)
    if suffix == ".png":
        figure.savefig(out, format="png", dpi=100)
    else:
        out.write_text(html_page(figure, frame, symbol, interval))
    return ChartResult(out, frame.height)


def draw(frame: pl.DataFrame, symbol: str, interval: str, width_us: int) -> Figure:
    """Price candles over volume bars, sharing the time axis."""
    figure = Figure(figsize=(12, 6.5))
    # The Agg canvas, never pyplot: no display, no global state, safe in servers and tests.
    FigureCanvasAgg(figure)
    price, volume = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    body_width = 0.7 * width_us / US_PER_DAY  # matplotlib dates are in days
    wicks = []
    for i, row in enumerate(frame.iter_rows(named=True)):
        x = mdates.date2num(row["bucket"])
        if row["open"] is None:  # only volume-only prints: a volume bar, no candle
            volume.add_patch(Rectangle((x - body_width / 2, 0), body_width, float(row["volume"]),
                                       facecolor="#999999", alpha=0.6, gid=f"volume-{i}"))
            continue
        o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
        colour = UP if c >= o else DOWN
        wicks.append(((x, lo), (x, h)))
        # A flat candle (open == close) still gets a visible body.
        height = abs(c - o) or (h - lo) * 0.01 or abs(o) * 1e-4 or 1e-8
        price.add_patch(Rectangle((x - body_width / 2, min(o, c)), body_width, height,
                                  facecolor=colour, edgecolor=colour, gid=f"candle-{i}"))
        volume.add_patch(Rectangle((x - body_width / 2, 0), body_width, float(row["volume"]),
                                   facecolor=colour, alpha=0.6, gid=f"volume-{i}"))
    price.add_collection(LineCollection(wicks, colors="#555555", linewidths=0.8, zorder=0))
    price.autoscale_view()
    volume.autoscale_view()
    # The symbol is data: matplotlib would read "$...$" in it as mathtext (and fail on bad
    # mathtext), so the title is drawn as plain text.
    price.set_title(f"{symbol}  {interval} candles (UTC)", parse_math=False)
    price.set_ylabel("price")
    volume.set_ylabel("volume")
    locator = mdates.AutoDateLocator()  # patches alone do not tell the axis it holds dates
    volume.xaxis.set_major_locator(locator)
    volume.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    price.grid(alpha=0.3)
    volume.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def html_page(figure: Figure, frame: pl.DataFrame, symbol: str, interval: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})  # same data, same page
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline in HTML
    rows = [{k: cell(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
    data = json.dumps(rows, indent=None).replace("</", "<\\/")
    title = html.escape(f"{symbol} {interval} candles")
    first, last = rows[0]["bucket"], rows[-1]["bucket"]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{title}</title></head><body>\n"
        f"<h1>{title}</h1>\n<p>{len(rows)} candles, {html.escape(first)} to "
        f"{html.escape(last)} (bucket starts, UTC). Prices below are exact.</p>\n"
        f"{svg}\n"
        f"<script type=\"application/json\" id=\"candles\">{data}</script>\n"
        "</body></html>\n"
    )
