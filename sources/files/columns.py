"""Backfill columns that are not prices: timestamps and sequence numbers, read exactly or refused
with one line naming the file, the column and the row.

Why (issue 14): a float `seq` used to be truncated (1.7 became 1, a duplicate of another
tick), an integer `ts_event` in milliseconds was read as microseconds (1767600000123 ms,
2026-01-05, became 1970-01-21, inside the accepted range, silently), and a value polars could
not parse ended in a polars traceback several lines long.

- Integer timestamps (and integer text in CSV) are in one unit per column, told by magnitude:
  each unit's values for 1973-03-03..2299-12-31 lie in a window of its own (seconds
  1e8..1.04e10, milliseconds 1e11..1.04e13, microseconds 1e14..1.04e16, nanoseconds
  1e17..9.2e18), a factor of ten or more apart, so the first row's value names the unit and
  every other row must be in the same window. A value in no window (before 1973, or between
  windows) or in another unit's window is an error naming its row: which unit was meant
  cannot be known, and a guess would move ticks by decades. Nanoseconds are floored to the
  microsecond (the core's unit). Earlier times, or any doubt: write a timestamp column or ISO
  text.
- Timestamp columns (any unit, naive is UTC) and ISO text are read as before; text that is no
  time is an error naming its row.
- `seq` must be integers: a float column is refused (a float cannot hold every 64-bit sequence
  number, and truncating one invents duplicates), and so is text that is not an integer or an
  integer beyond int64.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from tapeflow.errors import UserError

ROW = "_row"
"""Row number within its file: the arrival order (0-based; messages count from 1)."""
INTEGER_TEXT = r"^\s*[+-]?\d+\s*$"


class BackfillInputError(UserError, ValueError):
    """An input the backfill cannot read as trades or quotes; the message is one line."""


UnitWindow = tuple[str, int, int, Callable[[pl.Expr], pl.Expr]]

UNITS: tuple[UnitWindow, ...] = (
    ("seconds", 10**8, 104 * 10**8, lambda e: e * 1_000_000),
    ("milliseconds", 10**11, 104 * 10**11, lambda e: e * 1_000),
    ("microseconds", 10**14, 104 * 10**14, lambda e: e),
    ("nanoseconds", 10**17, 2**63 - 1, lambda e: e.floordiv(1_000)),
)
"""(unit, lowest, highest value of 1973-03-03..2299-12-31, conversion to microseconds)."""


def unit_of(value: int) -> UnitWindow | None:
    for window in UNITS:
        if window[1] <= value <= window[2]:
            return window
    return None


def where(path: Path, name: str, row: int) -> str:
    """'f.csv: column ts_event, row 7' (rows counted from 1, the header not counted)."""
    return f"{path}: column {name}, row {row + 1}"


def raw_value(lf: pl.LazyFrame, name: str, row: int) -> object:
    """The value of `name` at `row` as the file holds it (for an error message)."""
    found = lf.filter(pl.col(ROW) == row).select(pl.col(name)).collect()
    return found.item() if found.height else None


def _integers(name: str, dtype: pl.DataType) -> pl.Expr:
    """An integer or integer-text column as Int64, null where a value is not one."""
    col = pl.col(name)
    if dtype == pl.String:
        return col.str.strip_chars().str.strip_prefix("+").cast(pl.Int64, strict=False)
    return col.cast(pl.Int64, strict=False)


def time_form(path: Path, lf: pl.LazyFrame, name: str, dtype: pl.DataType) -> str:
    """How a timestamp column is read: "datetime", "iso", or the unit of its integers
    ("seconds", ...). Reads the column once for integers; raises naming a row that does not
    fit."""
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.String:
        # Text is integers or ISO times, as its first value says; a row that is neither is
        # then named by `check_flags`.
        first_text = lf.select(pl.col(name)).filter(pl.col(name).is_not_null()).head(1) \
            .collect()
        if not first_text.height or not re.match(INTEGER_TEXT, first_text.item()):
            return "iso"
    elif not dtype.is_integer():
        raise BackfillInputError(f"{path}: column {name} has type {dtype}: want a timestamp, "
                                 "integer time since the epoch, or ISO text")
    ints = lf.select(pl.col(ROW), _integers(name, dtype).alias(name)).filter(
        pl.col(name).is_not_null())
    first = ints.head(1).collect()
    if not first.height:
        return "microseconds"  # no value at all: the empty-value check names the rows
    row, value = first.row(0)
    window = unit_of(value)
    if window is None:
        raise BackfillInputError(
            f"{where(path, name, row)}: {value} is not a time in seconds, milliseconds, "
            "microseconds or nanoseconds since the epoch between 1973 and 2299 (write such "
            "times as a timestamp column or ISO text)")
    unit, low, high, _ = window
    odd = ints.filter((pl.col(name) < low) | (pl.col(name) > high)).head(1).collect()
    if odd.height:
        other_row, other = odd.row(0)
        other_unit = unit_of(other)
        looks = f"looks like {other_unit[0]}" if other_unit else "fits no unit"
        raise BackfillInputError(
            f"{where(path, name, other_row)}: {other} {looks} where row {row + 1} "
            f"({value}) is in {unit}: one unit per column")
    return unit


def time_expr(name: str, dtype: pl.DataType, form: str) -> pl.Expr:
    """The column as Int64 microseconds since the epoch, UTC; null where a value cannot be
    read (the caller reports the row: `bad_flag`)."""
    col = pl.col(name)
    if form == "datetime":
        assert isinstance(dtype, pl.Datetime)
        if dtype.time_zone is None:
            col = col.dt.replace_time_zone("UTC")
        return col.dt.epoch("us")
    if form == "iso":
        return col.str.to_datetime(time_unit="us", time_zone="UTC", strict=False).dt.epoch("us")
    convert = next(window[3] for window in UNITS if window[0] == form)
    return convert(_integers(name, dtype))


def seq_expr(path: Path, lf: pl.LazyFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    """`seq` as Int64, null where a value is not an integer; a float column is refused."""
    if dtype.is_float():
        first = lf.select(pl.col(ROW), pl.col(name)).filter(pl.col(name).is_not_null()) \
            .head(1).collect()
        shown = f"row {first.row(0)[0] + 1} is {first.row(0)[1]!r}" if first.height else "empty"
        raise BackfillInputError(
            f"{path}: column {name} holds floating-point numbers ({shown}): sequence numbers "
            "must be integers (a float cannot hold every one exactly, and truncating would "
            "invent duplicates)")
    if dtype != pl.String and not dtype.is_integer():
        raise BackfillInputError(f"{path}: column {name} has type {dtype}: want integers")
    return _integers(name, dtype)


def bad_flag(name: str) -> str:
    """The helper column that marks rows whose `name` could not be read."""
    return f"_bad_{name}"


def flag_expr(name: str, converted: pl.Expr) -> pl.Expr:
    """True where the file holds a value for `name` that could not be converted."""
    return (converted.is_null() & pl.col(name).is_not_null()).alias(bad_flag(name))


def check_flags(frame: pl.DataFrame, path: Path, lf: pl.LazyFrame,
                wanted: dict[str, str]) -> pl.DataFrame:
    """Raise for the first row a flag marks (naming file, column, row and the value as
    written); the frame without the flag columns otherwise. `wanted` says, per column, what a
    value should have been ("an integer")."""
    for name, what in wanted.items():
        flag = bad_flag(name)
        if flag in frame.columns and frame[flag].any():
            row = int(frame.filter(pl.col(flag))[ROW][0])
            raise BackfillInputError(f"{where(path, name, row)}: "
                                     f"{_shown(raw_value(lf, name, row))} is not {what}")
    return frame.drop([c for c in frame.columns if c.startswith("_bad_")])


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first_null_row(frame: pl.DataFrame, name: str) -> int | None:
    """The row number of the first empty value of `name`, None when there is none."""
    nulls = frame.filter(pl.col(name).is_null())
    return int(nulls[ROW][0]) if nulls.height else None
