"""Column-wise ticks and candles as Arrow tables for ClickHouse: the twin of `clickhouse_rows`.

Why: the market flow and the backfill write millions of clean ticks and candles, and building
one Python row of `Decimal`s per record (`clickhouse_rows.trade_row`) costs more than the tick
filter itself. The backfill holds them as polars columns of the core's integer units, the flow
as core records; either way an Arrow table with `decimal128` columns built straight from the
integers (int64 arrays viewed at scale 8, never a `Decimal` per value) carries the same values
exactly (no float, no rounding) and is inserted in one call (`insert_arrow`).

Same tables, same columns, same values as `clickhouse_rows` (the stream's mapping): column
lists are `TABLE_COLUMNS`, prices and sizes are the scale-8 units as Decimal(18, 8), volume
Decimal(38, 8), notional Decimal(38, 16), timestamps microseconds as DateTime64(6, 'UTC'),
`conditions` a list, `trade_id` nullable. The same ranges are checked (`RowRangeError`); the
stream/backfill parity test (tests/integration/test_backfill_parity.py) compares the tables
both produce, FINAL, column by column.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sinks.clickhouse.rows import (
    CANDLE_COLUMNS,
    MAX_D18,
    MAX_D38,
    REJECTION_COLUMNS,
    TABLE_COLUMNS,
    RowRangeError,
    candle_table,
    to_row,
)
from tapeflow.core.fixedpoint import NOTIONAL_SCALE, SCALE
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade

log = logging.getLogger("tapeflow.sinks.clickhouse")

TIMESTAMP = pa.timestamp("us", tz="UTC")
DECIMAL_TICK_COLUMNS = frozenset({"price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz"})
PRICE = pa.decimal128(18, SCALE)
VOLUME = pa.decimal128(38, SCALE)
NOTIONAL = pa.decimal128(38, NOTIONAL_SCALE)


def _check(table: str, column: str, values: Sequence[int], low: int, high: int) -> None:
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


def candles_from_frame(table: str, frame: pl.DataFrame) -> pa.Table:
    """Candles held column-wise (`jobs.backfill_candles.final_candles`: units as Int64, volume
    and notional as Int128) as the Arrow table for `table`, checked like `candle_row`."""
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


# Core records (the market flow's outputs) as Arrow tables.

_UNITS_WIDE = pa.decimal128(19, 0)


def _units(values: Sequence[int | None]) -> pa.Array:
    """Scale-8 units (int64, nulls allowed) as Decimal(18, 8), through int64 and a view: no
    Python object per value; a value beyond 18 digits raises `pa.ArrowInvalid`."""
    ints = pa.array(values, pa.int64())
    return ints.cast(_UNITS_WIDE).view(pa.decimal128(19, SCALE)).cast(PRICE)


def _wide(values: Sequence[int], dtype: pa.DataType) -> pa.Array:
    """Sums that may pass int64 (candle volume, notional) as Decimal(38, scale)."""
    return pa.array(values, pa.decimal128(38, 0)).view(dtype)


def _times(table: str, column: str, values: Sequence[int]) -> pa.Array:
    ints = pa.array(values, pa.int64())
    if len(ints):
        bounds = pc.min_max(ints)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low < EVENT_TIME_MIN_US or high > EVENT_TIME_MAX_US:
            raise RowRangeError(f"{table}.{column}: a time outside 1900-01-01..2299-12-31")
    return ints.cast(TIMESTAMP)


def _strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(values, pa.string())


def _lists(values: Sequence[Iterable[str]]) -> pa.Array:
    return pa.array([list(v) for v in values], pa.list_(pa.string()))


def trades_table(trades: Sequence[Trade]) -> pa.Table:
    """Clean trades as the `trades` table (`clickhouse_rows.trade_row`'s values, column-wise)."""
    symbol, venue, ts, seq, price, size, trade_id, conditions = zip(*trades, strict=True)
    return pa.Table.from_arrays(
        [_strings(symbol), _strings(venue), _times("trades", "ts_event", ts),
         pa.array(seq, pa.int64()), _units(price), _units(size), _strings(trade_id),
         _lists(conditions)], names=list(TABLE_COLUMNS["trades"]))


def quotes_table(quotes: Sequence[Quote]) -> pa.Table:
    """Clean quotes as the `quotes` table."""
    symbol, venue, ts, seq, bid_px, bid_sz, ask_px, ask_sz = zip(*quotes, strict=True)
    return pa.Table.from_arrays(
        [_strings(symbol), _strings(venue), _times("quotes", "ts_event", ts),
         pa.array(seq, pa.int64()), _units(bid_px), _units(bid_sz), _units(ask_px),
         _units(ask_sz)], names=list(TABLE_COLUMNS["quotes"]))


def rejections_table(rejections: Sequence[Rejection]) -> pa.Table:
    """Refused ticks as `rejected_ticks`: the fields the tick's kind lacks are NULL and
    `conditions` empty, as `clickhouse_rows.rejection_row` writes them."""
    cols: dict[str, list[Any]] = {name: [] for name in REJECTION_COLUMNS}
    for rejection in rejections:
        tick = rejection.tick
        cols["kind"].append(str(rejection.kind))
        cols["reason"].append(str(rejection.reason))
        cols["detail"].append(rejection.detail)
        for name in ("symbol", "venue", "ts_event", "seq"):
            cols[name].append(getattr(tick, name))
        trade = isinstance(tick, Trade)
        for name in ("price", "size", "trade_id"):
            cols[name].append(getattr(tick, name) if trade else None)
        cols["conditions"].append(tick.conditions if isinstance(tick, Trade) else ())
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            cols[name].append(None if trade else getattr(tick, name))
    arrays = {
        **{name: _strings(cols[name]) for name in ("kind", "reason", "symbol", "venue",
                                                   "trade_id", "detail")},
        "ts_event": _times("rejected_ticks", "ts_event", cols["ts_event"]),
        "seq": pa.array(cols["seq"], pa.int64()),
        "conditions": _lists(cols["conditions"]),
        **{name: _units(cols[name]) for name in ("price", "size", "bid_px", "bid_sz",
                                                 "ask_px", "ask_sz")},
    }
    return pa.Table.from_arrays([arrays[name] for name in REJECTION_COLUMNS],
                                names=list(REJECTION_COLUMNS))


def candles_table(table: str, candles: Sequence[Candle]) -> pa.Table:
    """Candles of one width as `table` (`clickhouse_rows.candle_row`'s values)."""
    (symbol, bucket, _width, open_, high, low, close, volume, notional, vwap, count,
     version) = zip(*candles, strict=True)
    return pa.Table.from_arrays(
        [_strings(symbol), _times(table, "bucket", bucket), _units(open_), _units(high),
         _units(low), _units(close), _wide(volume, VOLUME), _wide(notional, NOTIONAL),
         _units(vwap), pa.array(count, pa.uint64()), pa.array(version, pa.uint64())],
        names=list(CANDLE_COLUMNS))


def _table_of(record: Any) -> str:
    kind = type(record)
    if kind is Trade:
        return "trades"
    if kind is Quote:
        return "quotes"
    if kind is Rejection:
        return "rejected_ticks"
    if kind is Candle:
        return candle_table(record.width_us)
    raise TypeError(f"no ClickHouse table for {kind.__name__} records")


def _builder(table: str) -> Callable[[Sequence[Any]], pa.Table]:
    if table == "trades":
        return trades_table
    if table == "quotes":
        return quotes_table
    if table == "rejected_ticks":
        return rejections_table
    return lambda candles: candles_table(table, candles)


_UNFIT = (RowRangeError, pa.ArrowInvalid, OverflowError, TypeError, ValueError)


def records_tables(records: Iterable[Any]) -> tuple[list[tuple[str, pa.Table]], int]:
    """Market records (Trade, Quote, Rejection, Candle) as one Arrow table per ClickHouse
    table, in the order of their first record, each table's rows in record order; and how
    many records were skipped. A record that fits no row (a value out of its column's
    range, a width without a table) is logged and skipped, as the row mapper does: when a
    table does not build, its records go through `clickhouse_rows.to_row` one by one to find
    and name them."""
    groups: dict[str, list[Any]] = {}
    skipped = 0
    for record in records:
        try:
            table = _table_of(record)
        except _UNFIT as exc:
            skipped += 1
            log.error("not stored in ClickHouse: %s", exc)
            continue
        groups.setdefault(table, []).append(record)
    out = []
    for table, group in groups.items():
        build = _builder(table)
        try:
            out.append((table, build(group)))
            continue
        except _UNFIT:
            pass
        fit = []
        for record in group:
            try:
                to_row(record)
            except _UNFIT as exc:
                skipped += 1
                log.error("not stored in ClickHouse: %s", exc)
                continue
            fit.append(record)
        if fit:
            out.append((table, build(fit)))
    return out, skipped
