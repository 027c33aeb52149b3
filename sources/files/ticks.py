"""Backfill input: find the files, tell trades from quotes, and normalise columns to core units.

Why a module of its own: everything a user can get wrong about a file (a path that does not
exist, a missing column, a price with nine decimals) is found here and reported in one line
naming the file and the column, before a single core function runs. See docs/backfill.md.

- Paths: files, globs (`data/*.parquet`, `**` recursive) and directories (every `*.parquet`
  and `*.csv` below them, sorted). Files are read in sorted order per kind, and each file's
  row order is its arrival order: for the tick filter (sequence, duplicates, late prints) the
  order of a venue's ticks is data, so the backfill never re-sorts a symbol's trades or quotes.
- Kind: by columns first (a file with `price` and `size` holds trades, one with `bid_px` and
  `ask_px` quotes); a file with neither is classified by its name (`trade`/`quote` in it), which
  then reports the missing columns.
- `ts_event`: a timestamp (any unit; naive means UTC), integer microseconds since the epoch,
  or ISO text (CSV). An optional `ts_recv` column in the same forms is the receive time the
  stream takes from Kafka: it feeds the future-timestamp rule and caps the merge key.
- Prices and sizes: decimals, strings, floats or integers, converted exactly to scale-8 units by
  the core's `fixedpoint.to_units` (a float through its shortest repr: 0.1 is 10,000,000 units).
  Vectorised: each *distinct* value is converted once and mapped back with polars (a tape has
  few distinct prices and sizes). A value that cannot be converted exactly (more than 8
  decimals, beyond decimal(18, 8), NaN, infinity, text that is not a number, a null) stops the
  backfill with an error naming the file, the column and the value: it is a defect of the file,
  not of the market, and the operator who owns the file is the one who can fix it.
- CSV: price and size columns are read as text (never through a float); `conditions` is a
  `;`-separated list of codes (empty: none); `trade_id` empty means null.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Literal

import polars as pl

from tapeflow.core.fixedpoint import ONE, FixedPointError, to_units
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade
from tapeflow.errors import UserError

Kind = Literal["trade", "quote"]

TRADE_REQUIRED = ("symbol", "venue", "ts_event", "seq", "price", "size")
TRADE_OPTIONAL = ("trade_id", "conditions")
QUOTE_REQUIRED = Quote._fields
RECV_COLUMN = "ts_recv"
"""Optional receive-time column (the Kafka timestamp the stream would have had)."""
DECIMAL_COLUMNS: dict[Kind, tuple[str, ...]] = {
    "trade": ("price", "size"),
    "quote": ("bid_px", "bid_sz", "ask_px", "ask_sz"),
}
ROW = "_row"
"""Row number within its file: the arrival order."""
SUFFIXES = (".parquet", ".csv")
CONDITIONS_SEPARATOR = ";"


class BackfillInputError(UserError, ValueError):
    """An input the backfill cannot read as trades or quotes; the message is one line."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: Kind
    columns: tuple[str, ...]

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() == ".csv"


def expand_paths(paths: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """Files named, matched by globs, or found under directories; sorted, without repeats.
    Each with whether it was named explicitly (True) or found by a glob or directory."""
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        text = str(raw)
        p = Path(text)
        if glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in SUFFIXES]
            if not files:
                raise BackfillInputError(f"no Parquet or CSV file matches {text!r}")
            found.extend((f, False) for f in files)
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not files:
                raise BackfillInputError(f"no Parquet or CSV file under {text!r}")
            found.extend((f, False) for f in files)
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise BackfillInputError(f"{text}: not a .parquet or .csv file")
            found.append((p, True))
        else:
            raise BackfillInputError(f"{text}: no such file or directory")
    unique: dict[Path, bool] = {}
    for path, explicit in found:
        key = path.resolve()
        unique[key] = unique.get(key, False) or explicit
    return list(unique.items())


def _scan(path: Path, columns: Sequence[str] | None = None) -> pl.LazyFrame:
    if path.suffix.lower() == ".csv":
        text_cols = {c: pl.String for kind in DECIMAL_COLUMNS.values() for c in kind}
        text_cols.update({"trade_id": pl.String, "conditions": pl.String,
                          "symbol": pl.String, "venue": pl.String})
        return pl.scan_csv(path, schema_overrides=text_cols, try_parse_dates=False,
                           row_index_name=ROW)
    return pl.scan_parquet(path, row_index_name=ROW)


def _schema(path: Path) -> pl.Schema:
    try:
        return _scan(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackfillInputError(f"{path}: cannot read it as {path.suffix[1:]}: {first}") from None


def classify(path: Path, columns: Sequence[str]) -> Kind:
    """Trades or quotes, by columns, else by name; raises when neither says."""
    cols = set(columns)
    if {"price", "size"} <= cols:
        kind: Kind = "trade"
    elif {"bid_px", "ask_px"} <= cols or "quote" in path.name.lower():
        kind = "quote"
    elif "trade" in path.name.lower():
        kind = "trade"
    else:
        raise BackfillInputError(
            f"{path}: neither trades (price, size) nor quotes (bid_px, ask_px); "
            f"columns are {', '.join(c for c in columns if c != ROW) or 'none'}")
    required = TRADE_REQUIRED if kind == "trade" else QUOTE_REQUIRED
    missing = [c for c in required if c not in cols]
    if missing:
        raise BackfillInputError(f"{path}: {kind} file without column(s) {', '.join(missing)}")
    return kind


def is_tick_file(path: Path, columns: Sequence[str]) -> bool:
    """Whether a file found in a directory or by a glob is meant as trades or quotes: it has
    the kind's price columns, or its name says trades/quotes (then `classify` checks it)."""
    cols = set(columns)
    name = path.name.lower()
    return ({"price", "size"} <= cols or {"bid_px", "ask_px"} <= cols
            or "trade" in name or "quote" in name)


def open_inputs(paths: Sequence[str | Path]) -> tuple[list[InputFile], list[Path]]:
    """Every input file, classified and checked for its columns, and the files skipped.

    A file named explicitly must be trades or quotes; one found in a directory or by a glob
    that is neither (a `tapeflow generate` directory also holds executions, labels, ...) is
    skipped and listed in the report."""
    files = []
    skipped = []
    for path, explicit in expand_paths(paths):
        columns = tuple(_schema(path).names())
        if not explicit and not is_tick_file(path, columns):
            skipped.append(path)
            continue
        files.append(InputFile(path, classify(path, columns), columns))
    if not files:
        raise BackfillInputError("no trade or quote file among the inputs (skipped: "
                                 + ", ".join(p.name for p in skipped) + ")")
    return files, skipped


def _micros(name: str, dtype: pl.DataType) -> pl.Expr:
    """A timestamp column as Int64 microseconds since the epoch, UTC."""
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            col = col.dt.replace_time_zone("UTC")
        return col.dt.epoch("us")
    if dtype.is_integer():
        return col.cast(pl.Int64)
    if dtype == pl.String:
        return col.str.to_datetime(time_unit="us", time_zone="UTC").dt.epoch("us")
    raise BackfillInputError(f"column {name} has type {dtype}: want a timestamp, integer "
                             "microseconds or ISO text")


@dataclass(frozen=True)
class Window:
    """What to backfill: symbols (None: all) and event time [start_us, end_us)."""

    symbols: frozenset[str] | None = None
    start_us: int | None = None
    end_us: int | None = None


def scan(file: InputFile, window: Window = Window()) -> pl.LazyFrame:
    """The file as a lazy frame: the kind's columns with `ts_event` (and `ts_recv`) in
    microseconds, `_row` its row number, rows outside `window` dropped. Prices stay as read."""
    lf = _scan(file.path)
    schema = lf.collect_schema()
    required = TRADE_REQUIRED if file.kind == "trade" else QUOTE_REQUIRED
    exprs = [pl.col(ROW)]
    for name in required:
        if name == "ts_event":
            exprs.append(_micros(name, schema[name]).alias(name))
        elif name in ("symbol", "venue"):
            exprs.append(pl.col(name).cast(pl.String))
        elif name == "seq":
            exprs.append(pl.col(name).cast(pl.Int64))
        else:
            exprs.append(pl.col(name))
    if file.kind == "trade":
        exprs.append(pl.col("trade_id").cast(pl.String) if "trade_id" in schema
                     else pl.lit(None, pl.String).alias("trade_id"))
        if "conditions" not in schema:
            exprs.append(pl.lit([], pl.List(pl.String)).alias("conditions"))
        elif schema["conditions"] == pl.String:
            exprs.append(pl.col("conditions").fill_null("").str.split(CONDITIONS_SEPARATOR)
                         .list.eval(pl.element().filter(pl.element() != "")))
        else:
            exprs.append(pl.col("conditions").cast(pl.List(pl.String)))
    if RECV_COLUMN in schema:
        exprs.append(_micros(RECV_COLUMN, schema[RECV_COLUMN]).alias(RECV_COLUMN))
    lf = lf.select(exprs)
    if window.symbols is not None:
        lf = lf.filter(pl.col("symbol").is_in(sorted(window.symbols)))
    if window.start_us is not None:
        lf = lf.filter(pl.col("ts_event") >= window.start_us)
    if window.end_us is not None:
        lf = lf.filter(pl.col("ts_event") < window.end_us)
    return lf


def count_rows(file: InputFile, window: Window = Window()) -> int:
    """Rows `scan` yields (for the progress bar and the bucket count); streams the file."""
    out = scan(file, window).select(pl.len()).collect(engine="streaming")
    return int(out.item())


def _describe(value: object) -> str:
    return repr(value) if not isinstance(value, str) else repr(value[:40])


def to_units_series(series: pl.Series, where: str) -> pl.Series:
    """A price or size column as Int64 scale-8 units, exactly (module docstring)."""
    if series.null_count():
        raise BackfillInputError(f"{where}: {series.null_count()} empty value(s)")
    dtype = series.dtype
    if dtype.is_integer():
        limit = (10**18 - 1) // ONE
        bad = series.filter(series.abs() > limit)
        if len(bad):
            raise BackfillInputError(f"{where}: {bad[0]} exceeds decimal(18, 8)")
        scaled: pl.Series = series.cast(pl.Int64) * ONE
        return scaled
    distinct = series.unique()
    units: list[int] = []
    for value in distinct.to_list():
        try:
            units.append(to_units(value))
        except (FixedPointError, TypeError, ValueError) as exc:
            raise BackfillInputError(f"{where}: {_describe(value)} is not an exact "
                                     f"decimal(18, 8): {exc}") from None
    return series.replace_strict(distinct, pl.Series(units, dtype=pl.Int64),
                                 return_dtype=pl.Int64)


def normalise(frame: pl.DataFrame, file: InputFile) -> pl.DataFrame:
    """A collected frame of `scan` with its decimal columns in units and timestamps checked."""
    for name in ("ts_event", RECV_COLUMN):
        if name not in frame.columns:
            continue
        ts = frame[name]
        if ts.null_count() and name == "ts_event":
            raise BackfillInputError(f"{file.path}: column ts_event: empty value(s)")
        out = ts.filter((ts < EVENT_TIME_MIN_US) | (ts > EVENT_TIME_MAX_US))
        if len(out):
            raise BackfillInputError(f"{file.path}: column {name}: {out[0]} us is outside "
                                     "1900-2299 (microseconds since the epoch expected)")
    for name in ("symbol", "venue", "seq"):
        if frame[name].null_count():
            raise BackfillInputError(f"{file.path}: column {name}: empty value(s)")
    return frame.with_columns(
        to_units_series(frame[name], f"{file.path}: column {name}")
        for name in DECIMAL_COLUMNS[file.kind]
    )


def _columns(frame: pl.DataFrame, names: Sequence[str]) -> list[list[object]]:
    return [frame[c].to_list() for c in names]


_new_tuple = tuple.__new__


def trades_of(frame: pl.DataFrame) -> list[Trade]:
    """Core trades from a normalised frame, in its row order. (`tuple.__new__` mapped in C
    rather than `Trade(...)` per row: several times cheaper, and this runs once per row.)"""
    n = frame.height
    conditions = frame["conditions"]
    if conditions.list.len().max() in (0, None):  # no conditions at all: the common case
        conds: Iterable[tuple[str, ...]] = repeat((), n)
    else:
        conds = [() if c is None else tuple(c) for c in conditions.to_list()]
    rows = zip(*_columns(frame, Trade._fields[:7]), conds, strict=True)
    return list(map(_new_tuple, repeat(Trade, n), rows))


def quotes_of(frame: pl.DataFrame) -> list[Quote]:
    """Core quotes from a normalised frame, in its row order."""
    rows = zip(*_columns(frame, Quote._fields), strict=True)
    return list(map(_new_tuple, repeat(Quote, frame.height), rows))
