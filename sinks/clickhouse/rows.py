"""Core records as ClickHouse rows: pure mappers, one column list per table.

Why a separate, pure module: the mapping is where exactness is won or lost, so it is tested
without a store (tests/unit/test_clickhouse_rows.py) and shared by the stream and the backfill,
which must write identical rows. Every row is a tuple in the order of its table's column list
(`TABLE_COLUMNS`); `ingested_at` is left to the table default.

Two findings about clickhouse-connect 0.x (checked against its source and chDB, see
docs/stores.md) shape the conversions:

- Timestamps. A `DateTime64(6, 'UTC')` column whose first value is an `int` is written as raw
  ticks, i.e. our integer microseconds, unchanged: exact, no `datetime` built per row, about
  3x cheaper to write than an aware `datetime` (and 7x counting its construction). An aware
  `datetime` is also exact but slower; a naive one is read as the *process's local time*, off by
  the UTC offset. So timestamps go in as the core's ints, never as datetimes.
- Decimals. The driver writes `int(Decimal(str(x)) * 10**scale)`: digits beyond the scale are
  truncated silently, and it never checks the declared precision: 10**10 goes into a
  Decimal(18, 8) column and 10**22 into Decimal(38, 16) without a word (the stored value then
  breaks the column's contract). The core's values are integers at a fixed scale, so the
  conversion here is exact (`fixedpoint.to_decimal`), and every value is checked against its
  column's precision: a value out of range raises `RowRangeError`, never wraps or truncates.

DeadLetter is not a ClickHouse record: undecodable input goes to the dead-letter topic whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from tapeflow.core.fixedpoint import NOTIONAL_SCALE, SCALE, to_decimal
from tapeflow.core.market.candles import MINUTE_US, SECOND_US, Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, DeadLetter, Quote, Trade
from tapeflow.errors import TapeflowError

Row = tuple[Any, ...]

TRADE_COLUMNS = ("symbol", "venue", "ts_event", "seq", "price", "size", "trade_id", "conditions")
QUOTE_COLUMNS = ("symbol", "venue", "ts_event", "seq", "bid_px", "bid_sz", "ask_px", "ask_sz")
REJECTION_COLUMNS = (
    "kind", "reason", "symbol", "venue", "ts_event", "seq",
    "price", "size", "trade_id", "conditions",
    "bid_px", "bid_sz", "ask_px", "ask_sz",
    "detail",
)
CANDLE_COLUMNS = (
    "symbol", "bucket", "open", "high", "low", "close",
    "volume", "notional", "vwap", "trade_count", "version",
)

CANDLE_TABLES: Mapping[int, str] = MappingProxyType(
    {SECOND_US: "candles_1s", MINUTE_US: "candles_1m"}
)
"""Candle width (microseconds) -> table. Coarser intervals are rolled up from 1 m at query
time (docs/design.md, "Stores"); storing another width means a new table and an entry here."""

TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "trades": TRADE_COLUMNS,
    "quotes": QUOTE_COLUMNS,
    "rejected_ticks": REJECTION_COLUMNS,
    **{table: CANDLE_COLUMNS for table in CANDLE_TABLES.values()},
})

# Column ranges, as unscaled integers: what the DDL (schemas/clickhouse/0001_init.sql) declares.
MAX_D18 = 10**18 - 1
"""Decimal(18, 8): prices, sizes, vwap. The wire's decimal(18, 8), so every decoded tick fits."""
MAX_D38 = 10**38 - 1
"""Decimal(38, 8) volume and Decimal(38, 16) notional: sums of many ticks."""
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
MAX_UINT64 = 2**64 - 1
# Event times: `tapeflow.core.models.EVENT_TIME_MIN_US`/`EVENT_TIME_MAX_US`, ClickHouse DateTime64's
# range. ClickHouse stores ticks outside the range as they are and displays nonsense, so the bound
# is checked here.


class RowRangeError(TapeflowError, ValueError):
    """A value does not fit its ClickHouse column; the message names table, column and record."""


class UnsupportedWidthError(TapeflowError, ValueError):
    """A candle width with no table."""


def _out_of_range(table: str, column: str, value: int, kind: str, record: object) -> RowRangeError:
    return RowRangeError(f"{table}.{column} = {value} does not fit {kind}: {record!r}")


class DecimalType(NamedTuple):
    """A ClickHouse Decimal(precision, scale) column holding core units of the same scale."""

    name: str
    bound: int
    scale: int


PRICE = DecimalType("Decimal(18, 8)", MAX_D18, SCALE)
VOLUME = DecimalType("Decimal(38, 8)", MAX_D38, SCALE)
NOTIONAL = DecimalType("Decimal(38, 16)", MAX_D38, NOTIONAL_SCALE)


def _dec(table: str, column: str, units: int, dtype: DecimalType, record: object) -> Any:
    """Exact Decimal of the units, refused when they do not fit the column's precision."""
    if -dtype.bound <= units <= dtype.bound:
        return to_decimal(units, dtype.scale)
    raise _out_of_range(table, column, units, f"{dtype.name} (|unscaled| <= {dtype.bound})",
                        record)


def _ts(table: str, column: str, us: int, record: object) -> int:
    if EVENT_TIME_MIN_US <= us <= EVENT_TIME_MAX_US:
        return us
    raise _out_of_range(table, column, us, "DateTime64(6), 1900-01-01 to 2299-12-31", record)


def _int64(table: str, column: str, value: int, record: object) -> int:
    if MIN_INT64 <= value <= MAX_INT64:
        return value
    raise _out_of_range(table, column, value, "Int64", record)


def _uint64(table: str, column: str, value: int, record: object) -> int:
    if 0 <= value <= MAX_UINT64:
        return value
    raise _out_of_range(table, column, value, "UInt64", record)


def _price(table: str, column: str, units: int, record: object) -> Any:
    """A scale-8 value in a Decimal(18, 8) column. The common case is inlined for speed."""
    if -MAX_D18 <= units <= MAX_D18:
        return to_decimal(units)
    return _dec(table, column, units, PRICE, record)


def trade_row(trade: Trade) -> Row:
    """A clean trade for `trades`."""
    t = "trades"
    return (
        trade.symbol,
        trade.venue,
        _ts(t, "ts_event", trade.ts_event, trade),
        _int64(t, "seq", trade.seq, trade),
        _price(t, "price", trade.price, trade),
        _price(t, "size", trade.size, trade),
        trade.trade_id,
        list(trade.conditions),
    )


def quote_row(quote: Quote) -> Row:
    """A clean quote for `quotes`."""
    t = "quotes"
    return (
        quote.symbol,
        quote.venue,
        _ts(t, "ts_event", quote.ts_event, quote),
        _int64(t, "seq", quote.seq, quote),
        _price(t, "bid_px", quote.bid_px, quote),
        _price(t, "bid_sz", quote.bid_sz, quote),
        _price(t, "ask_px", quote.ask_px, quote),
        _price(t, "ask_sz", quote.ask_sz, quote),
    )


def rejection_row(rejection: Rejection) -> Row:
    """A refused tick for `rejected_ticks`, kept whole: the fields its kind does not have are
    NULL (an empty array for `conditions`, which ClickHouse cannot make nullable)."""
    t = "rejected_ticks"
    tick = rejection.tick
    head = (
        str(rejection.kind),
        str(rejection.reason),
        tick.symbol,
        tick.venue,
        _ts(t, "ts_event", tick.ts_event, rejection),
        _int64(t, "seq", tick.seq, rejection),
    )
    if isinstance(tick, Trade):
        body: Row = (
            _price(t, "price", tick.price, rejection),
            _price(t, "size", tick.size, rejection),
            tick.trade_id,
            list(tick.conditions),
            None, None, None, None,
        )
    else:
        body = (
            None, None, None, [],
            _price(t, "bid_px", tick.bid_px, rejection),
            _price(t, "bid_sz", tick.bid_sz, rejection),
            _price(t, "ask_px", tick.ask_px, rejection),
            _price(t, "ask_sz", tick.ask_sz, rejection),
        )
    return (*head, *body, rejection.detail)


def candle_table(width_us: int, tables: Mapping[int, str] = CANDLE_TABLES) -> str:
    """The table holding candles of `width_us`; any width the map names is supported."""
    table = tables.get(width_us)
    if table is None:
        stored = ", ".join(f"{_width_label(w)} -> {name}" for w, name in sorted(tables.items()))
        raise UnsupportedWidthError(
            f"no ClickHouse table for {_width_label(width_us)} candles (width {width_us} us); "
            f"stored widths: {stored or 'none'}. Coarser intervals are rolled up from 1m "
            "candles at query time; to store another width, add a table and map it here."
        )
    return table


def candle_row(candle: Candle, tables: Mapping[int, str] = CANDLE_TABLES) -> Row:
    """A final (or corrected) candle for the table of its width. Volume is Decimal(38, 8) and
    notional Decimal(38, 16) because they are sums: a minute of a liquid symbol can pass
    Decimal(18, 8)'s 10**10, and one maximal price x size already reaches 10**20."""
    return _candle_row(candle_table(candle.width_us, tables), candle)


def _maybe_price(table: str, column: str, units: int | None, record: object) -> Any:
    """NULL for a candle without prices (only volume-only prints, `core.market.candles`)."""
    return None if units is None else _price(table, column, units, record)


def _candle_row(t: str, candle: Candle) -> Row:
    return (
        candle.symbol,
        _ts(t, "bucket", candle.bucket, candle),
        _maybe_price(t, "open", candle.open, candle),
        _maybe_price(t, "high", candle.high, candle),
        _maybe_price(t, "low", candle.low, candle),
        _maybe_price(t, "close", candle.close, candle),
        _dec(t, "volume", candle.volume, VOLUME, candle),
        _dec(t, "notional", candle.notional, NOTIONAL, candle),
        _price(t, "vwap", candle.vwap, candle),
        _uint64(t, "trade_count", candle.trade_count, candle),
        _uint64(t, "version", candle.version, candle),
    )


def _trade(record: Any) -> tuple[str, Row]:
    return "trades", trade_row(record)


def _quote(record: Any) -> tuple[str, Row]:
    return "quotes", quote_row(record)


def _rejection(record: Any) -> tuple[str, Row]:
    return "rejected_ticks", rejection_row(record)


def _candle(record: Any) -> tuple[str, Row]:
    table = candle_table(record.width_us)
    return table, _candle_row(table, record)


_BY_TYPE: Mapping[type, Callable[[Any], tuple[str, Row]]] = MappingProxyType({
    Trade: _trade, Quote: _quote, Rejection: _rejection, Candle: _candle,
})


def to_row(record: Trade | Quote | Rejection | Candle) -> tuple[str, Row]:
    """(table, row) for any market record the ClickHouse sink stores."""
    mapper = _BY_TYPE.get(type(record))
    if mapper is not None:
        return mapper(record)
    if isinstance(record, DeadLetter):
        raise TypeError("a DeadLetter is not stored in ClickHouse: it goes, raw bytes and "
                        "reason, to the dead-letter topic (docs/design.md, 'Wire contract')")
    raise TypeError(f"no ClickHouse table for {type(record).__name__} records")


def _width_label(width_us: int) -> str:
    for unit, size in (("d", 86_400 * SECOND_US), ("h", 3_600 * SECOND_US),
                       ("m", MINUTE_US), ("s", SECOND_US)):
        if width_us > 0 and width_us % size == 0:
            return f"{width_us // size}{unit}"
    return f"{width_us}us"
