"""Candle corrections that remove trades must win (issue 14), against the real chDB.

A candle's version was its trade count, so a later run that drops a bad print (a fixed file, a
tighter filter, a bust) wrote a lower version and ReplacingMergeTree(version) kept the old,
wrong candle. Every writer now adds its base (`sinks.versions.candle_version_base`): a later
writer outranks every earlier one, and within a writer the version still grows with each
correction. Both writers of the candle tables are shown: the stream's (the market flow's
Arrow writer, `sinks.clickhouse.market_writer`) and the backfill.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import polars as pl

from jobs.backfill import BackfillOptions, run_backfill
from jobs.init import init_clickhouse
from sinks.clickhouse.market_writer import MarketClickHouseWriter
from sinks.versions import CANDLE_VERSION_SHIFT, candle_version_base
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candle_batch import build_candles
from tapeflow.core.models import Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

T0 = 1_767_623_400_000_000


def _client(settings: Settings) -> tuple[Settings, Any]:
    fresh = settings.with_overrides(clickhouse_database=f"tf_rw_{uuid.uuid4().hex[:8]}")
    init_clickhouse(fresh)
    return fresh, open_clickhouse(fresh.clickhouse_url(), fresh.clickhouse.database)


def _candles(client: Any, table: str = "candles_1m") -> list[tuple[Any, ...]]:
    return client.query(f"SELECT symbol, high, volume, trade_count, version FROM {table} "
                        "FINAL ORDER BY symbol, bucket").result_rows


def _tape(bad: bool) -> list[Trade]:
    out = [Trade("AAA", "XNAS", T0 + i * 1000, i + 1, 100 * ONE, ONE, None, ())
           for i in range(3)]
    if bad:
        out.append(Trade("AAA", "XNAS", T0 + 5000, 4, 100_000 * ONE, ONE, None, ()))
    return out


def test_a_later_stream_writer_replaces_a_candle_with_fewer_trades(settings: Settings) -> None:
    _, client = _client(settings)
    first, second = candle_version_base(), candle_version_base()
    assert second > first  # strictly increasing within a process
    for base, bad in ((first, True), (second, False)):
        with MarketClickHouseWriter(client, version_base=base) as writer:
            for candle in build_candles(_tape(bad))[0]:
                writer.add_record(candle)
    (row,) = _candles(client)
    assert row[1:4] == (100, 3, 3)  # the bad print is gone
    assert row[4] == second + 3
    # A replay of the first writer's rows (a dead process's retries) does not win either.
    with MarketClickHouseWriter(client, version_base=first) as writer:
        for candle in build_candles(_tape(True))[0]:
            writer.add_record(candle)
    assert _candles(client)[0][1:4] == (100, 3, 3)


def _write_file(path: Path, trades: list[Trade]) -> Path:
    pl.DataFrame([[*t[:4], str(t.price / ONE), str(t.size / ONE)] for t in trades],
                 schema=["symbol", "venue", "ts_event", "seq", "price", "size"],
                 orient="row").write_parquet(path)
    return path


def test_a_backfill_rerun_without_a_bad_print_replaces_its_candles(settings: Settings,
                                                                   tmp_path: Path) -> None:
    fresh, client = _client(settings)
    path = tmp_path / "trades.parquet"
    run_backfill(fresh, [_write_file(path, _tape(True))])
    before = _candles(client)
    assert before[0][1:4] == (100_000, 4, 4)
    run_backfill(fresh, [_write_file(path, _tape(False))])  # the file was fixed
    after = _candles(client)
    assert after[0][1:4] == (100, 3, 3)
    for table in ("candles_1s", "candles_1m"):
        # The count part of every version is the trade count; the base part grew.
        for _sym, _high, _volume, count, version in _candles(client, table):
            assert version % (1 << CANDLE_VERSION_SHIFT) == count
    assert after[0][4] >> CANDLE_VERSION_SHIFT > before[0][4] >> CANDLE_VERSION_SHIFT
    # The same files again: same content, a higher version (idempotent in every FINAL value).
    run_backfill(fresh, [path], BackfillOptions())
    again = _candles(client)
    assert [r[:4] for r in again] == [r[:4] for r in after] and again[0][4] > after[0][4]
