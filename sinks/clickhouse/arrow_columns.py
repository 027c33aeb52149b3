"""Arrow columns for ClickHouse built from the core's integers: what the market's and the
trading flow's Arrow tables share (`sinks.clickhouse.arrow`, `sinks.clickhouse.trading_arrow`).

Why: a row mapper (`sinks.clickhouse.rows`, `trading_rows`) builds one `Decimal` and one tuple
per value, which costs more than the core's work on a tick. Here a column is one Arrow array
built from the integers: scale-8 units become `decimal128` by reinterpreting the int64 (the
value is the unscaled integer, so nothing is rounded), sums that may pass int64 go through
128-bit integers, timestamps are the integer microseconds as `timestamp[us, UTC]`
(ClickHouse's DateTime64(6, 'UTC')). Ranges are checked on the arrays (`pyarrow.compute`), not
value by value in Python.

Same ranges as the row mappers: a value outside its column raises `RowRangeError` naming the
table, the column and the value (the writers then find the record with the row mapper and
leave it out, `sinks.clickhouse.record_writer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinks.clickhouse.rows import (
    MAX_D18,
    MAX_D38,
    MAX_INT64,
    MAX_UINT64,
    MIN_INT64,
    RowRangeError,
)
from tapeflow.core.fixedpoint import NOTIONAL_SCALE, SCALE
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US

TIMESTAMP = pa.timestamp("us", tz="UTC")
PRICE = pa.decimal128(18, SCALE)
"""Prices and sizes: Decimal(18, 8)."""
MONEY = pa.decimal128(38, SCALE)
"""Sums at scale 8 (volume, P&L, cash): Decimal(38, 8)."""
NOTIONAL = pa.decimal128(38, NOTIONAL_SCALE)
_WIDE_INTS = pa.decimal128(38, 0)
_UNITS_INTS = pa.decimal128(19, 0)
_UNITS_VIEW = pa.decimal128(19, SCALE)


def check_range(table: str, column: str, values: Sequence[int | None], low: int,
                high: int) -> None:
    """Raise `RowRangeError` naming the first value of `values` outside [low, high]."""
    present = [v for v in values if v is not None]  # an all-null column has no min or max
    if present and (min(present) < low or max(present) > high):
        bad = next(v for v in present if not low <= v <= high)
        raise RowRangeError(f"{table}.{column} = {bad} is outside [{low}, {high}]")


def _ints(table: str, column: str, values: Sequence[int | None], low: int,
          high: int) -> pa.Array:
    """`values` as an int64 array (nulls kept), every value in [low, high] (within int64)."""
    try:
        ints = pa.array(values, pa.int64())
    except OverflowError:  # beyond int64, so beyond [low, high]: name it
        check_range(table, column, values, low, high)
        raise
    if ints.null_count < len(ints):
        bounds = pc.min_max(ints)
        if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
            check_range(table, column, values, low, high)
    return ints


def units(table: str, column: str, values: Sequence[int | None]) -> pa.Array:
    """Scale-8 units (nulls allowed) as Decimal(18, 8), exactly."""
    ints = _ints(table, column, values, -MAX_D18, MAX_D18)
    return ints.cast(_UNITS_INTS).view(_UNITS_VIEW).cast(PRICE)


def wide(table: str, column: str, values: Sequence[int | None],
         dtype: pa.DataType = MONEY) -> pa.Array:
    """Sums that may pass int64 (volume, notional, money; nulls allowed) as Decimal(38, s) of
    `dtype`: through int64 when they fit, else from the Python integers (still exact)."""
    try:
        try:
            ints = pa.array(values, pa.int64())
        except OverflowError:
            return pa.array(values, _WIDE_INTS).view(dtype)
        return ints.cast(_WIDE_INTS).view(dtype)
    except pa.ArrowInvalid:  # beyond 38 digits: name it
        check_range(table, column, values, -MAX_D38, MAX_D38)
        raise


def times(table: str, column: str, values: Sequence[int | None]) -> pa.Array:
    """Integer microseconds as DateTime64(6, 'UTC'), within 1900-01-01..2299-12-31."""
    return _ints(table, column, values, EVENT_TIME_MIN_US, EVENT_TIME_MAX_US).cast(TIMESTAMP)


def int64s(table: str, column: str, values: Sequence[int | None]) -> pa.Array:
    return _ints(table, column, values, MIN_INT64, MAX_INT64)


def uint64s(table: str, column: str, values: Sequence[int]) -> pa.Array:
    try:
        return pa.array(values, pa.uint64())
    except OverflowError:
        check_range(table, column, values, 0, MAX_UINT64)
        raise


def fields(records: Sequence[Sequence[Any]], count: int) -> list[list[Any]]:
    """The first `count` fields of tuple records (NamedTuples) as columns. One `itemgetter`
    pass per field: steady at about 0.2 µs a record, where `zip(*records)` was measured at
    2-5 µs a record on flush-sized batches (20,000 and more)."""
    return [list(map(itemgetter(i), records)) for i in range(count)]


def strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(values, pa.string())


def string_lists(values: Sequence[Iterable[str]]) -> pa.Array:
    """Arrays of strings (a trade's conditions)."""
    return pa.array([list(v) for v in values], pa.list_(pa.string()))


def arrow_table(columns: dict[str, Any], names: Sequence[str]) -> pa.Table:
    """The Arrow table of `columns` in the order of `names` (the table's column list)."""
    return pa.Table.from_arrays([columns[name] for name in names], names=list(names))


def warm_up() -> None:
    """Build tiny columns, so pyarrow's lazy start (its first cast imports pandas: about 3 s
    on this machine, which runs without bytecode caches) happens now, not at a flow's first
    flush, where it would hold the interpreter, and the flow's worker with it."""
    units("warm_up", "x", [1, None])
    wide("warm_up", "x", [1, None])
