"""Core records as Arrow tables for ClickHouse: the column-wise twin of `clickhouse_rows`.

Why: the backfill writes millions of clean ticks and candles, and building one Python row of
`Decimal`s per record (`clickhouse_rows.trade_row`) costs more than the tick filter itself. An
Arrow table with `decimal128` columns built straight from the core's integer units carries the
same values exactly (no float, no rounding) and is inserted in one call.

Same tables, same columns, same values as `clickhouse_rows` (the stream's mapping): column
lists are `TABLE_COLUMNS`, prices and sizes are the scale-8 units as Decimal(18, 8), volume
Decimal(38, 8), notional Decimal(38, 16), timestamps microseconds as DateTime64(6, 'UTC'),
`conditions` a list, `trade_id` nullable. The same ranges are checked (`RowRangeError`); the
stream/backfill parity test (tests/integration/test_backfill_parity.py) compares the tables
both produce, FINAL, column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import polars as pl
import pyarrow as pa

from sinks.clickhouse_rows import (
    CANDLE_COLUMNS,
    MAX_D18,
    MAX_D38,
    MAX_INT64,
    MAX_TS_US,
    MIN_INT64,
    MIN_TS_US,
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    RowRangeError,
)
from tapeflow.candles import Candle
from tapeflow.fixedpoint import NOTIONAL_SCALE, SCALE
from tapeflow.models import Quote, Trade

TIMESTAMP = pa.timestamp("us", tz="UTC")
PRICE = pa.decimal128(18, SCALE)
VOLUME = pa.decimal128(38, SCALE)
NOTIONAL = pa.decimal128(38, NOTIONAL_SCALE)


def _arrow(values: Sequence[Any], dtype: pl.DataType, arrow_type: pa.DataType) -> pa.Array:
    """Python values as an Arrow array, built by polars: `pa.array` imports pandas on first use
    (seconds on a loaded machine), polars does not."""
    return pl.Series(values=list(values), dtype=dtype).to_arrow().cast(arrow_type)


def _strings(values: Sequence[str | None]) -> pa.Array:
    return _arrow(values, pl.String, pa.string())


def _lists(values: Sequence[Sequence[str]]) -> pa.Array:
    """Tuples of strings as list<string>: flat values and offsets (far cheaper than a
    list-of-lists conversion)."""
    flat = [v for items in values for v in items]
    offsets = list(accumulate((len(items) for items in values), initial=0))
    return pa.ListArray.from_arrays(_arrow(offsets, pl.Int32, pa.int32()), _strings(flat))


def _check(table: str, column: str, values: Sequence[int], low: int, high: int) -> None:
    if values and (min(values) < low or max(values) > high):
        bad = next(v for v in values if not low <= v <= high)
        raise RowRangeError(f"{table}.{column} = {bad} is outside [{low}, {high}]")


def _units(table: str, column: str, values: Sequence[int], dtype: pa.Decimal128Type,
           bound: int) -> pa.Array:
    """Unscaled integers as a decimal128 array, exactly: two's complement, 16 bytes each."""
    _check(table, column, values, -bound, bound)
    if bound <= MAX_INT64:  # fits int64: let Arrow widen it
        wide = _arrow(values, pl.Int64, pa.int64()).cast(pa.decimal128(19, 0))
        return wide.view(pa.decimal128(19, dtype.scale)).cast(dtype)
    raw = b"".join(v.to_bytes(16, "little", signed=True) for v in values)
    return pa.Array.from_buffers(dtype, len(values), [None, pa.py_buffer(raw)])


def _ts(table: str, column: str, values: Sequence[int]) -> pa.Array:
    _check(table, column, values, MIN_TS_US, MAX_TS_US)
    return _arrow(values, pl.Int64, pa.int64()).cast(TIMESTAMP)


def _int64(table: str, column: str, values: Sequence[int]) -> pa.Array:
    _check(table, column, values, MIN_INT64, MAX_INT64)
    return _arrow(values, pl.Int64, pa.int64())


def trades_table(trades: Sequence[Trade]) -> pa.Table:
    """Clean trades for `trades` (the columns of `clickhouse_rows.trade_row`)."""
    t = "trades"
    symbol, venue, ts, seq, price, size, trade_id, conditions = (
        zip(*trades, strict=True) if trades else ((),) * 8)
    arrays: list[Any] = [
        _strings(symbol), _strings(venue),
        _ts(t, "ts_event", ts), _int64(t, "seq", seq),
        _units(t, "price", price, PRICE, MAX_D18), _units(t, "size", size, PRICE, MAX_D18),
        _strings(trade_id),
        _lists(conditions),
    ]
    return pa.Table.from_arrays(arrays, names=list(TRADE_COLUMNS))


def quotes_table(quotes: Sequence[Quote]) -> pa.Table:
    """Clean quotes for `quotes` (the columns of `clickhouse_rows.quote_row`)."""
    t = "quotes"
    symbol, venue, ts, seq, bid, bid_sz, ask, ask_sz = (
        zip(*quotes, strict=True) if quotes else ((),) * 8)
    arrays: list[Any] = [
        _strings(symbol), _strings(venue),
        _ts(t, "ts_event", ts), _int64(t, "seq", seq),
        _units(t, "bid_px", bid, PRICE, MAX_D18), _units(t, "bid_sz", bid_sz, PRICE, MAX_D18),
        _units(t, "ask_px", ask, PRICE, MAX_D18), _units(t, "ask_sz", ask_sz, PRICE, MAX_D18),
    ]
    return pa.Table.from_arrays(arrays, names=list(QUOTE_COLUMNS))


def candles_table(table: str, candles: Sequence[Candle]) -> pa.Table:
    """Candles of one width for `table` (the columns of `clickhouse_rows.candle_row`)."""
    (symbol, bucket, _width, open_, high, low, close, volume, notional, vwap, count,
     version) = zip(*candles, strict=True) if candles else ((),) * 12
    arrays: list[Any] = [
        _strings(symbol), _ts(table, "bucket", bucket),
        _units(table, "open", open_, PRICE, MAX_D18), _units(table, "high", high, PRICE, MAX_D18),
        _units(table, "low", low, PRICE, MAX_D18), _units(table, "close", close, PRICE, MAX_D18),
        _units(table, "volume", volume, VOLUME, MAX_D38),
        _units(table, "notional", notional, NOTIONAL, MAX_D38),
        _units(table, "vwap", vwap, PRICE, MAX_D18),
        _arrow(count, pl.UInt64, pa.uint64()), _arrow(version, pl.UInt64, pa.uint64()),
    ]
    return pa.Table.from_arrays(arrays, names=list(CANDLE_COLUMNS))
