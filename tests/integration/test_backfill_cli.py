"""`tapeflow backfill` options and command line, on real chDB.

- `--symbols/--start/--end` (the job's `Window`) give exactly what a backfill of the same rows,
  cut out of the files beforehand, gives: a differential test, and a full backfill has more.
- The command, run as a user would (a subprocess, stderr not a terminal): plain progress lines
  with rows/s, the report on stdout; a bad path or a file with missing columns is one line on
  stderr and exit status 1, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.backfill import BackfillOptions, Window, run_backfill
from jobs.generate import write_market_parquet
from jobs.init import init_clickhouse
from sinks.clickhouse.rows import TABLE_COLUMNS
from sources.synthetic import MarketSpec, generate_market
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SPEC = MarketSpec(seed=5, n_symbols=4, duration_s=90.0, fault_rate=0.03)
TABLES = ("trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m")


def _snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    out = {}
    for table in TABLES:
        # A candle's stored version is its writer's base + its trade count (sinks.versions):
        # every run is its own writer, so runs compare by the count part (the low 20 bits).
        cols = ", ".join("bitAnd(version, 1048575)" if c == "version" else c
                         for c in TABLE_COLUMNS[table])
        result = client.query(f"SELECT {cols} FROM {table} FINAL ORDER BY {cols}",
                              query_formats={"DateTime64*": "int"})
        out[table] = [tuple(r) for r in result.result_rows]
    return out


def _database(settings: Settings) -> Settings:
    out = settings.with_overrides(clickhouse_database=f"tf_bf_{uuid.uuid4().hex[:8]}")
    init_clickhouse(out)
    return out


def test_symbols_start_end_equal_a_backfill_of_the_cut_files(settings: Settings,
                                                             tmp_path: Path) -> None:
    market = generate_market(SPEC)
    write_market_parquet(market, tmp_path / "all")
    symbols = frozenset(sorted({t.symbol for t in market.trades})[:2])
    start = SPEC.start_us + 20_000_000
    end = SPEC.start_us + 60_000_000
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("trades.parquet", "quotes.parquet"):
        (pl.read_parquet(tmp_path / "all" / name)
         .filter(pl.col("symbol").is_in(sorted(symbols)),
                 pl.col("ts_event").dt.epoch("us") >= start,
                 pl.col("ts_event").dt.epoch("us") < end)
         .write_parquet(cut / name))

    windowed = _database(settings)
    run_backfill(windowed, [tmp_path / "all"],
                 BackfillOptions(window=Window(symbols, start, end), bucket_rows=5_000))
    reference = _database(settings)
    run_backfill(reference, [cut])
    full = _database(settings)
    run_backfill(full, [tmp_path / "all"])

    got = _snapshot(windowed)
    assert got == _snapshot(reference)
    assert got["trades"] and got["candles_1m"] and got["rejected_ticks"]
    assert {row[0] for row in got["trades"]} == symbols
    assert all(start <= row[2] < end for row in got["trades"] + got["quotes"])
    assert len(_snapshot(full)["trades"]) > len(got["trades"])


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update(TAPEFLOW_HOME=str(tmp_path / "home"),
               TAPEFLOW_CLICKHOUSE_DSN=f"chdb://{tmp_path / 'chdb'}")
    return subprocess.run([sys.executable, "-m", "tapeflow.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_command_reports_progress_and_writes(tmp_path: Path) -> None:
    write_market_parquet(generate_market(MarketSpec(seed=3, n_symbols=2, duration_s=20.0)),
                         tmp_path / "market")
    init = subprocess.run(
        [sys.executable, "-c", "from jobs.init import init_clickhouse\n"
         "from tapeflow.settings import Settings\ninit_clickhouse(Settings())"],
        cwd=REPO, env={**os.environ, "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'chdb'}"},
        capture_output=True, text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    done = _cli(["backfill", str(tmp_path / "market"), "--start", "2026-01-05"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stderr and "rows to process" in done.stderr
    assert "wrote candles_1m" in done.stdout and "trades" in done.stdout


def test_a_bad_path_is_one_line(tmp_path: Path) -> None:
    done = _cli(["backfill", str(tmp_path / "missing.parquet")], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tapeflow: error: {tmp_path / 'missing.parquet'}: no such file or directory"]


def test_a_file_with_missing_columns_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trades.parquet"
    pl.DataFrame({"symbol": ["A"], "venue": ["X"], "price": ["1.5"]}).write_parquet(path)
    done = _cli(["backfill", str(path)], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (f"tapeflow: error: {path}: trade file without column(s) "
                        "ts_event, seq, size")


@pytest.mark.parametrize(("seq", "ts", "message"), [
    ("1\n2.5", "1767600000123456\n1767600000123457", "column seq, row 2: '2.5' is not an integer"),
    ("1\n2", "2026-01-05T08:00:00Z\nnoon", "column ts_event, row 2: 'noon' is not a time"),
    ("1\n2", "1767600000123456\n1767600000123", "column ts_event, row 2: 1767600000123 looks "
     "like milliseconds"),
])
def test_a_value_that_does_not_read_is_one_line_naming_the_row(
        tmp_path: Path, seq: str, ts: str, message: str) -> None:
    """Issue 14: a polars traceback before (text that does not parse), or a silent misreading
    (a float seq truncated, milliseconds read as microseconds)."""
    path = tmp_path / "trades.csv"
    rows = [f"A,X,{t},{s},1.5,1" for s, t in zip(seq.split("\n"), ts.split("\n"), strict=True)]
    path.write_text("symbol,venue,ts_event,seq,price,size\n" + "\n".join(rows) + "\n")
    done = _cli(["backfill", str(path)], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"tapeflow: error: {path}: {message}")


def test_a_bad_start_is_a_usage_error(tmp_path: Path) -> None:
    done = _cli(["backfill", str(tmp_path), "--start", "yesterday"], tmp_path)
    assert done.returncode == 2
    assert "--start takes an ISO date or time" in done.stderr
