"""`tapeflow query` over symbols that look like markup or commands, through the real store and
command line (issue 14; docs/query.md, "Output is data").

A symbol `[/]` in the store made every `query` whose table held it crash (rich read it as a
closing tag with nothing to close), an escape sequence in a symbol reached the terminal, and
CSV carried spreadsheet formulas. Now the table shows them as text, escaped, CSV neutralises
formulas, and JSON holds the data unchanged. (Table-driven cases without a store:
tests/unit/test_output_is_data.py.)
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from jobs.init import init_clickhouse
from sinks.clickhouse.writer import ClickHouseWriter
from tapeflow.cli import app
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.models import Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

BASE = 1_767_623_400_000_000  # 2026-01-05 14:30 UTC
SYMBOLS = ["[/]", "[bold]B[/bold]", "T\x1b]0;owned\x07\x1b[2J", "=HYPERLINK(\"http://x\")"]


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def test_symbols_that_look_like_markup_or_commands_are_shown_as_data(
        clickhouse_url: str, postgres_dsn: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", clickhouse_dsn=clickhouse_url,
                        postgres_dsn=postgres_dsn,
                        clickhouse_database=f"tf_hostile_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    trades = [Trade(sym, "XNAS", BASE + i * 1_000_000, 1, ONE, ONE, None, ())
              for i, sym in enumerate(SYMBOLS)]
    built, _ = build_candles(trades)
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    writer = ClickHouseWriter(client)
    writer.add_records([*trades, *final_candles(built)])
    writer.flush()
    env = {"TAPEFLOW_CLICKHOUSE_DSN": clickhouse_url, "TAPEFLOW_POSTGRES_DSN": postgres_dsn,
           "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
           "TAPEFLOW_HOME": str(settings.home)}

    start, end = _iso(BASE), _iso(BASE + 60_000_000)
    table = CliRunner().invoke(app, ["query", "vwap", "--start", start, "--end", end], env=env)
    assert table.exit_code == 0, table.output  # every symbol in one table: it used to crash
    for shown in ("[/]", "[bold]B[/bold]", "T\\x1b]0;owned\\x07\\x1b[2J", "=HYPERLINK"):
        assert shown in table.stdout, shown
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    one = CliRunner().invoke(app, ["query", "candles", "[/]", "--interval", "1s"], env=env)
    assert one.exit_code == 0 and "[/] 1s candles" in one.stdout, one.output

    out = tmp_path / "v.csv"
    done = CliRunner().invoke(app, ["query", "vwap", "--start", start, "--end", end, "-f",
                                    "csv", "-o", str(out)], env=env)
    assert done.exit_code == 0, done.output
    cells = pl.read_csv(out, schema_overrides={"symbol": pl.String})["symbol"].to_list()
    assert "'=HYPERLINK(\"http://x\")" in cells and "[/]" in cells
    as_json = CliRunner().invoke(app, ["query", "vwap", "--start", start, "--end", end, "-f",
                                       "json"], env=env)
    assert sorted(r["symbol"] for r in json.loads(as_json.stdout)) == sorted(SYMBOLS)
