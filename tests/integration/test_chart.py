"""`tapeflow chart`: candles written through the real ClickHouse sink, drawn to PNG and HTML.

What it proves: the PNG is an image of the figure's size that is not blank and holds both
candle colours (rising and falling candles were written); the HTML holds exactly one
`candle-N` element per candle of the range asked (not of the whole store) and the exact prices
of each; the CLI writes the same files; an empty range says so in one line and writes nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from jobs.chart import DOWN, UP, chart
from jobs.init import init_clickhouse
from jobs.query import Analytics
from jobs.query_params import QueryInputError
from sinks.clickhouse.writer import ClickHouseWriter
from tapeflow.cli import app
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import MINUTE_US
from tapeflow.core.models import Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

START = 1_767_623_400_000_000  # 2026-01-05 14:30 UTC
SYMBOL = "CHRT"


@pytest.fixture
def charted(clickhouse_url: str, tmp_path: Path) -> Settings:
    """20 minutes of a zig-zag tape (rising and falling 1m candles) in a fresh database. Only
    ClickHouse: a chart reads nothing else."""
    settings = Settings(home=tmp_path / "home", clickhouse_dsn=clickhouse_url,
                        clickhouse_database=f"tf_chart_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    trades = []
    for minute in range(20):
        base = (100 + minute % 5) * ONE
        for k in range(4):
            step = (k if minute % 2 else -k) * ONE // 4
            trades.append(Trade(SYMBOL, "XNAS", START + minute * MINUTE_US + k * 10_000_000,
                                minute * 10 + k, base + step, (k + 1) * ONE, None, ()))
    built, _ = build_candles(trades)
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    writer = ClickHouseWriter(client)
    writer.add_records([*trades, *final_candles(built)])
    writer.flush()
    return settings


def _range() -> tuple[str, str]:
    return "2026-01-05T14:33:00Z", "2026-01-05T14:45:00Z"  # 12 of the 20 minutes


def test_png_is_a_non_blank_candle_chart(charted: Settings, tmp_path: Path) -> None:
    start, end = _range()
    out = tmp_path / "c.png"
    result = chart(charted, SYMBOL, out, interval="1m", start=start, end=end)
    assert result.candles == 12
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 650)
        rgb = image.convert("RGB")
        colours = {c for _, c in rgb.getcolors(maxcolors=1 << 20) or []}
    assert len(colours) > 10
    assert _rgb(UP) in colours and _rgb(DOWN) in colours


def test_html_has_one_element_per_candle_with_exact_prices(charted: Settings,
                                                           tmp_path: Path) -> None:
    start, end = _range()
    out = tmp_path / "c.html"
    chart(charted, SYMBOL, out, interval="1m", start=start, end=end)
    with Analytics(charted) as q:
        want = q.candles(SYMBOL, "1m", start, end)
    page = out.read_text()
    ids = re.findall(r'<g id="candle-(\d+)"', page)
    assert sorted(int(i) for i in ids) == list(range(len(want))) and len(want) == 12
    assert len(re.findall(r'<g id="volume-\d+"', page)) == len(want)
    data = json.loads(re.search(r'<script type="application/json" id="candles">(.*?)</script>',
                                page, re.S).group(1))  # type: ignore[union-attr]
    assert [(d["bucket"], d["open"], d["high"], d["low"], d["close"], d["volume"])
            for d in data] == [
        (r["bucket"].isoformat(), f"{r['open']:f}", f"{r['high']:f}", f"{r['low']:f}",
         f"{r['close']:f}", f"{r['volume']:f}") for r in want.iter_rows(named=True)]
    assert not re.search(r'(src|href)="https?:', page)  # self-contained: nothing fetched


def test_coarse_interval_and_cli(charted: Settings, tmp_path: Path) -> None:
    out = tmp_path / "five.html"
    env = {"TAPEFLOW_CLICKHOUSE_DSN": charted.clickhouse_url(),
           "TAPEFLOW_CLICKHOUSE_DATABASE": charted.clickhouse.database}
    result = CliRunner().invoke(app, ["chart", SYMBOL, "--interval", "5m", "--output", str(out)],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"4 candles drawn to {out}"
    assert len(re.findall(r'<g id="candle-\d+"', out.read_text())) == 4


def test_empty_range_writes_nothing(charted: Settings, tmp_path: Path) -> None:
    out = tmp_path / "none.png"
    with pytest.raises(QueryInputError, match="no 1m candles for 'CHRT'"):
        chart(charted, SYMBOL, out, start="2020-01-01", end="2020-01-02")
    env = {"TAPEFLOW_CLICKHOUSE_DSN": charted.clickhouse_url(),
           "TAPEFLOW_CLICKHOUSE_DATABASE": charted.clickhouse.database}
    result = CliRunner().invoke(app, ["chart", "NOPE", "--output", str(out)], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("tapeflow: error: no 1m candles for 'NOPE'")
    assert not out.exists()
    with pytest.raises(QueryInputError, match=r"\.html or \.png"):
        chart(charted, SYMBOL, tmp_path / "c.svg")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_a_symbol_is_drawn_as_text_not_markup(charted: Settings, tmp_path: Path) -> None:
    """A symbol is data (issue 14): matplotlib read "$...$" in the title as mathtext and failed
    on bad mathtext; the HTML escapes it like any text."""
    symbol = "$\\frac{<b>[/]"
    trades = [Trade(symbol, "XNAS", START + k * 10_000_000, k, (100 + k) * ONE, ONE, None, ())
              for k in range(12)]
    built, _ = build_candles(trades)
    client = open_clickhouse(charted.clickhouse_url(), charted.clickhouse.database)
    writer = ClickHouseWriter(client)
    writer.add_records([*trades, *final_candles(built)])
    writer.flush()
    client.close()
    png, page = tmp_path / "s.png", tmp_path / "s.html"
    chart(charted, symbol, png, interval="1m")
    chart(charted, symbol, page, interval="1m")
    assert Image.open(png).size[0] > 0
    html = page.read_text()
    assert "<title>$\\frac{&lt;b&gt;[/] 1m candles</title>" in html
    # Outside the JSON data block (where only "</" matters, and is escaped), no raw "<b>".
    markup = re.sub(r'<script type="application/json".*?</script>', "", html, flags=re.S)
    assert "<b>" not in markup
