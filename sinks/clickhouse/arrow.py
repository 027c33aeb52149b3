"""Column-wise ticks and candles as Arrow tables for ClickHouse: the twin of `clickhouse_rows`.

Why: the backfill writes millions of clean ticks and candles, and building one Python row of
`Decimal`s per record (`clickhouse_rows.trade_row`) costs more than the tick filter itself. The
backfill holds them as polars columns of the core's integer units; an Arrow table with
`decimal128` columns built straight from those carries the same values exactly (no float, no
rounding) and is inserted in one call.

Same tables, same columns, same values as `clickhouse_rows` (the stream's mapping): column
lists are `TABLE_COLUMNS`, prices and sizes are the scale-8 units as Decimal(18, 8), volume
Decimal(38, 8), notional Decimal(38, 16), timestamps microseconds as DateTime64(6, 'UTC'),
`conditions` a list, `trade_id` nullable. The same ranges are checked (`RowRangeError`); the
stream/backfill parity test (tests/integration/test_backfill_parity.py) compares the tables
both produce, FINAL, column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from sinks.clickhouse.rows import CANDLE_COLUMNS, MAX_D18, MAX_D38, TABLE_COLUMNS, RowRangeError
from tapeflow.core.fixedpoint import NOTIONAL_SCALE, SCALE
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US

TIMESTAMP = pa.timestamp("us", tz="UTC")
DECIMAL_TICK_COLUMNS = frozenset({"price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz"})
PRICE = pa.decimal128(18, SCALE)
VOLUME = pa.decimal128(38, SCALE)
NOTIONAL = pa.decimal128(38, NOTIONAL_SCALE)


def _check(table: str, column: str, values: Sequence[int | None], low: int, high: int) -> None:
    values = [v for v in values if v is not None]  # an all-null column has no min or max
    if values and (min(values) < low or max(values) > high):
        bad = next(v for v in values if not low <= v <= high)
        raise RowRangeError(f"{table}.{column} = {bad} is outside [{low}, {high}]")


def ticks_from_units(table: str, frame: pl.DataFrame) -> pa.Table:
    """Clean ticks already held column-wise (the backfill's normalised frames: `ts_event`
    Int64 microseconds, prices and sizes Int64 scale-8 units) as the Arrow table for `table`
    ("trades" or "quotes"), without a Python object per row. Same checks and types as
    `trades_table` / `quotes_table`."""
    columns = TABLE_COLUMNS[table]
    arrays: list[Any] = []
    for name in columns:
        col = frame[name]
        if name == "ts_event":
            _check(table, name, [col.min(), col.max()], EVENT_TIME_MIN_US, EVENT_TIME_MAX_US)  # type: ignore[list-item]
            arrays.append(col.to_arrow().cast(pa.int64()).cast(TIMESTAMP))
        elif name in DECIMAL_TICK_COLUMNS:
            _check(table, name, [col.min(), col.max()], -MAX_D18, MAX_D18)  # type: ignore[list-item]
            wide = col.to_arrow().cast(pa.int64()).cast(pa.decimal128(19, 0))
            arrays.append(wide.view(pa.decimal128(19, SCALE)).cast(PRICE))
        elif name == "conditions":
            arrays.append(col.to_arrow().cast(pa.list_(pa.string())))
        elif name == "seq":
            arrays.append(col.to_arrow().cast(pa.int64()))
        else:
            arrays.append(col.to_arrow().cast(pa.string()))
    return pa.Table.from_arrays(arrays, names=list(columns))


def candles_from_frame(table: str, frame: pl.DataFrame, version_base: int = 0) -> pa.Table:
    """Candles held column-wise (`jobs.backfill_candles.final_candles`: units as Int64, volume
    and notional as Int128) as the Arrow table for `table`, checked like `candle_row`;
    `version_base` is added to every version (`sinks.versions.candle_version_base`)."""
    if version_base:
        frame = frame.with_columns(pl.col("version").cast(pl.UInt64) + version_base)
    arrays: list[Any] = []
    for name in CANDLE_COLUMNS:
        col = frame[name]
        if name == "symbol":
            arrays.append(col.to_arrow().cast(pa.string()))
        elif name == "bucket":
            _check(table, name, [col.min(), col.max()], EVENT_TIME_MIN_US, EVENT_TIME_MAX_US)  # type: ignore[list-item]
            arrays.append(col.to_arrow().cast(pa.int64()).cast(TIMESTAMP))
        elif name in ("trade_count", "version"):
            arrays.append(col.to_arrow().cast(pa.uint64()))
        elif name in ("volume", "notional"):
            _check(table, name, [col.min(), col.max()], -MAX_D38, MAX_D38)  # type: ignore[list-item]
            dtype = VOLUME if name == "volume" else NOTIONAL
            raw = col.cast(pl.Decimal(38, 0)).to_arrow()
            arrays.append(raw.view(dtype))
        else:
            _check(table, name, [col.min(), col.max()], -MAX_D18, MAX_D18)  # type: ignore[list-item]
            wide = col.to_arrow().cast(pa.int64()).cast(pa.decimal128(19, 0))
            arrays.append(wide.view(pa.decimal128(19, SCALE)).cast(PRICE))
    return pa.Table.from_arrays(arrays, names=list(CANDLE_COLUMNS))
