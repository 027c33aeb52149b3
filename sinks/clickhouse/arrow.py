"""Column-wise ticks and candles as Arrow tables for ClickHouse: the twin of `clickhouse_rows`.

Why: the market flow and the backfill write millions of clean ticks and candles, and building
one Python row of `Decimal`s per record (`clickhouse_rows.trade_row`) costs more than the tick
filter itself. The backfill holds them as polars columns of the core's integer units, the flow
as core records; either way an Arrow table with `decimal128` columns built straight from the
integers (`sinks.clickhouse.arrow_columns`: int64 arrays viewed at scale 8, never a `Decimal`
per value) carries the same values exactly (no float, no rounding) and is inserted in one call
(`insert_arrow`).

Same tables, same columns, same values as `clickhouse_rows` (the stream's row mapping, which
`tapeflow dlq replay` and the dead letters use): column lists are `TABLE_COLUMNS`, prices and
sizes are the scale-8 units as Decimal(18, 8) (a candle of volume-only prints has NULL
prices), volume Decimal(38, 8), notional Decimal(38, 16), timestamps microseconds as
DateTime64(6, 'UTC'), `conditions` a list, `trade_id` nullable, a candle's version its count
plus the writer's base (`sinks.versions.candle_version_base`). The same ranges are checked
(`RowRangeError`); tests/unit/test_clickhouse_arrow.py compares the two mappings, and the
stream/backfill parity test (tests/integration/test_backfill_parity.py) the tables both
produce, FINAL, column by column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from sinks.clickhouse.arrow_columns import (
    MONEY,
    NOTIONAL,
    PRICE,
    TIMESTAMP,
    arrow_table,
    check_range,
    fields,
    int64s,
    string_lists,
    strings,
    times,
    uint64s,
    units,
    wide,
)
from sinks.clickhouse.rows import (
    CANDLE_COLUMNS,
    MAX_D18,
    QUOTE_COLUMNS,
    REJECTION_COLUMNS,
    TABLE_COLUMNS,
    TRADE_COLUMNS,
    candle_table,
)
from tapeflow.core.fixedpoint import SCALE
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade

DECIMAL_TICK_COLUMNS = frozenset({"price", "size", "bid_px", "bid_sz", "ask_px", "ask_sz"})
VOLUME = MONEY


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
            check_range(table, name, [col.min(), col.max()], EVENT_TIME_MIN_US, EVENT_TIME_MAX_US)  # type: ignore[list-item]
            arrays.append(col.to_arrow().cast(pa.int64()).cast(TIMESTAMP))
        elif name in DECIMAL_TICK_COLUMNS:
            check_range(table, name, [col.min(), col.max()], -MAX_D18, MAX_D18)  # type: ignore[list-item]
            wide_ = col.to_arrow().cast(pa.int64()).cast(pa.decimal128(19, 0))
            arrays.append(wide_.view(pa.decimal128(19, SCALE)).cast(PRICE))
        elif name == "conditions":
            arrays.append(col.to_arrow().cast(pa.list_(pa.string())))
        elif name == "seq":
            arrays.append(col.to_arrow().cast(pa.int64()))
        else:
            arrays.append(col.to_arrow().cast(pa.string()))
    return pa.Table.from_arrays(arrays, names=list(columns))


# Core records (the market flow's outputs) as Arrow tables.


def trades_table(trades: Sequence[Trade]) -> pa.Table:
    """Clean trades as the `trades` table (`clickhouse_rows.trade_row`'s values, column-wise)."""
    t = "trades"
    symbol, venue, ts, seq, price, size, trade_id, conditions = fields(trades, 8)
    return arrow_table({"symbol": strings(symbol), "venue": strings(venue),
                  "ts_event": times(t, "ts_event", ts), "seq": int64s(t, "seq", seq),
                  "price": units(t, "price", price), "size": units(t, "size", size),
                  "trade_id": strings(trade_id), "conditions": string_lists(conditions)},
                 TRADE_COLUMNS)


def quotes_table(quotes: Sequence[Quote]) -> pa.Table:
    """Clean quotes as the `quotes` table."""
    t = "quotes"
    symbol, venue, ts, seq, bid_px, bid_sz, ask_px, ask_sz = fields(quotes, 8)
    return arrow_table({"symbol": strings(symbol), "venue": strings(venue),
                  "ts_event": times(t, "ts_event", ts), "seq": int64s(t, "seq", seq),
                  "bid_px": units(t, "bid_px", bid_px), "bid_sz": units(t, "bid_sz", bid_sz),
                  "ask_px": units(t, "ask_px", ask_px), "ask_sz": units(t, "ask_sz", ask_sz)},
                 QUOTE_COLUMNS)


def rejections_table(rejections: Sequence[Rejection]) -> pa.Table:
    """Refused ticks as `rejected_ticks`: the fields the tick's kind lacks are NULL and
    `conditions` empty, as `clickhouse_rows.rejection_row` writes them."""
    t = "rejected_ticks"
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
    return arrow_table({
        **{name: strings(cols[name]) for name in ("kind", "reason", "symbol", "venue",
                                                  "trade_id", "detail")},
        "ts_event": times(t, "ts_event", cols["ts_event"]),
        "seq": int64s(t, "seq", cols["seq"]),
        "conditions": string_lists(cols["conditions"]),
        **{name: units(t, name, cols[name]) for name in DECIMAL_TICK_COLUMNS},
    }, REJECTION_COLUMNS)


def candles_table(name: str, candles: Sequence[Candle], version_base: int = 0) -> pa.Table:
    """Candles of one width as the table `name` (`clickhouse_rows.candle_row`'s values), with
    `version_base` added to every version (`sinks.versions.candle_version_base`)."""
    (symbol, bucket, _width, open_, high, low, close, volume, notional, vwap, count,
     version) = fields(candles, 12)
    versions = [v + version_base for v in version] if version_base else version
    return arrow_table({"symbol": strings(symbol), "bucket": times(name, "bucket", bucket),
                  "open": units(name, "open", open_), "high": units(name, "high", high),
                  "low": units(name, "low", low), "close": units(name, "close", close),
                  "volume": wide(name, "volume", volume, VOLUME),
                  "notional": wide(name, "notional", notional, NOTIONAL),
                  "vwap": units(name, "vwap", vwap),
                  "trade_count": uint64s(name, "trade_count", count),
                  "version": uint64s(name, "version", versions)}, CANDLE_COLUMNS)


_TABLE_OF: dict[type, str] = {Trade: "trades", Quote: "quotes", Rejection: "rejected_ticks"}


def table_of(record: Any) -> str:
    """The ClickHouse table of a market record (Trade, Quote, Rejection, Candle); raises
    `UnsupportedWidthError` for a candle width without a table and `TypeError` for anything
    else (both: no row for it)."""
    name = _TABLE_OF.get(type(record))
    if name is not None:
        return name
    if type(record) is Candle:
        return candle_table(record.width_us)
    raise TypeError(f"no ClickHouse table for {type(record).__name__} records")


def market_builder(name: str, version_base: int = 0) -> Callable[[Sequence[Any]], pa.Table]:
    """How the records of the market table `name` become its Arrow table."""
    if name == "trades":
        return trades_table
    if name == "quotes":
        return quotes_table
    if name == "rejected_ticks":
        return rejections_table
    return lambda candles: candles_table(name, candles, version_base)
