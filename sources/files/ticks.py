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
- `ts_event`: a timestamp (any unit; naive means UTC), integer time since the epoch in seconds,
  milliseconds, microseconds or nanoseconds (the unit told by magnitude, one per column:
  `sources.files.columns`), or ISO text. An optional `ts_recv` column in the same forms is the
  receive time the stream takes from Kafka: it feeds the future-timestamp rule and caps the
  merge key. `seq` must be integers (a float column is refused, never truncated).
- Prices and sizes: decimals, strings, floats or integers, converted exactly to scale-8 units by
  the core's `fixedpoint.to_units` (a float through its shortest repr: 0.1 is 10,000,000 units).
  Vectorised: each *distinct* value is converted once and mapped back with polars (a tape has
  few distinct prices and sizes). A value that cannot be converted exactly (more than 8
  decimals, beyond decimal(18, 8), NaN, infinity, text that is not a number, a null) stops the
  backfill with an error naming the file, the column, the row and the value: it is a defect of
  the file, not of the market, and the operator who owns the file is the one who can fix it.
  So does any other value that cannot be read (a `seq` that is not an integer, a time that is
  no time): one line, never a polars traceback.
- CSV: every column is read as text and converted here (prices and sizes never through a
  float; polars' own inference would fail with a traceback on a late odd value);
  `conditions` is a `;`-separated list of codes (empty: none); `trade_id` empty means null.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Literal

import polars as pl

from sources.files.columns import (
    ROW,
    BackfillInputError,
    check_flags,
    first_null_row,
    flag_expr,
    seq_expr,
    time_expr,
    time_form,
    where,
)
from tapeflow.core.fixedpoint import ONE, FixedPointError, to_units
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade

__all__ = ["ROW", "BackfillInputError", "InputFile", "Window", "collect", "count_rows",
           "expand_paths", "normalise", "open_inputs", "quotes_of", "scan", "to_units_series",
           "trades_of"]

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
SUFFIXES = (".parquet", ".csv")
CONDITIONS_SEPARATOR = ";"


TIME_COLUMNS = ("ts_event", RECV_COLUMN)


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: Kind
    columns: tuple[str, ...]
    forms: tuple[tuple[str, str], ...] | None = None
    """How each timestamp column is read (`sources.files.columns.time_form`); None: found
    when the file is scanned."""

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
        # Every column as text, converted here with errors naming the row.
        return pl.scan_csv(path, infer_schema=False, try_parse_dates=False,
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
        kind = classify(path, columns)
        files.append(InputFile(path, kind, columns, _forms(path)))
    if not files:
        raise BackfillInputError("no trade or quote file among the inputs (skipped: "
                                 + ", ".join(p.name for p in skipped) + ")")
    return files, skipped


def _forms(path: Path) -> tuple[tuple[str, str], ...]:
    """How each timestamp column of the file is read (one pass over each)."""
    lf = _scan(path)
    schema = lf.collect_schema()
    try:
        return tuple((name, time_form(path, lf, name, schema[name]))
                     for name in TIME_COLUMNS if name in schema)
    except pl.exceptions.PolarsError as exc:
        raise BackfillInputError(f"{path}: cannot read it: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    forms = dict(file.forms if file.forms is not None else _forms(file.path))
    required = TRADE_REQUIRED if file.kind == "trade" else QUOTE_REQUIRED
    exprs = [pl.col(ROW)]
    for name in required:
        if name == "ts_event":
            converted = time_expr(name, schema[name], forms[name])
            exprs += [converted.alias(name), flag_expr(name, converted)]
        elif name in ("symbol", "venue"):
            exprs.append(pl.col(name).cast(pl.String))
        elif name == "seq":
            converted = seq_expr(file.path, lf, name, schema[name])
            exprs += [converted.alias(name), flag_expr(name, converted)]
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
        converted = time_expr(RECV_COLUMN, schema[RECV_COLUMN], forms[RECV_COLUMN])
        exprs += [converted.alias(RECV_COLUMN), flag_expr(RECV_COLUMN, converted)]
    lf = lf.select(exprs)
    # Rows whose time or symbol could not be read are kept, so `normalise` names them.
    unread = pl.col("ts_event").is_null()
    if window.symbols is not None:
        lf = lf.filter(pl.col("symbol").is_in(sorted(window.symbols))
                       | pl.col("symbol").is_null())
    if window.start_us is not None:
        lf = lf.filter((pl.col("ts_event") >= window.start_us) | unread)
    if window.end_us is not None:
        lf = lf.filter((pl.col("ts_event") < window.end_us) | unread)
    return lf


def count_rows(file: InputFile, window: Window = Window()) -> int:
    """Rows `scan` yields (for the progress bar and the bucket count); streams the file once,
    and raises for the first value that cannot be read or is missing, before anything is
    written (`normalise` names file, column and row)."""
    lf = scan(file, window)
    unreadable = [pl.col(c) for c in lf.collect_schema().names() if c.startswith("_bad_")]
    unreadable += [pl.col(c).is_null() for c in ("symbol", "venue", "seq", "ts_event")]
    bad = pl.any_horizontal(unreadable)
    out = collect(lf.select(pl.len().alias("rows"), bad.any().alias("bad")), file)
    if out["bad"][0]:
        normalise(collect(lf.filter(bad).head(1), file), file)  # raises, naming the row
    return int(out["rows"][0])


def collect(lf: pl.LazyFrame, file: InputFile) -> pl.DataFrame:
    """Run a scan of `file`; whatever polars still refuses (a corrupt page, a column of an
    unexpected type) is one line naming the file, not a polars traceback."""
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise BackfillInputError(f"{file.path}: cannot read it: {_first_line(exc)}") from None


def _describe(value: object) -> str:
    return repr(value) if not isinstance(value, str) else repr(value[:40])


def to_units_series(series: pl.Series, where: str,
                    rows: pl.Series | None = None) -> pl.Series:
    """A price or size column as Int64 scale-8 units, exactly (module docstring). `rows`, the
    file's row numbers, lets an error name the row of the first bad value."""
    def at(mask: pl.Series) -> str:
        if rows is None or not mask.any():
            return ""
        return f", row {int(rows.filter(mask)[0]) + 1}"

    if series.null_count():
        raise BackfillInputError(f"{where}{at(series.is_null())}: empty value "
                                 f"({series.null_count()} in all)")
    dtype = series.dtype
    if dtype.is_integer():
        limit = (10**18 - 1) // ONE
        too_big = series.abs() > limit
        if too_big.any():
            raise BackfillInputError(f"{where}{at(too_big)}: {series.filter(too_big)[0]} "
                                     "exceeds decimal(18, 8)")
        scaled: pl.Series = series.cast(pl.Int64) * ONE
        return scaled
    distinct = series.unique()
    units: list[int] = []
    for value in distinct.to_list():
        try:
            units.append(to_units(value))
        except (FixedPointError, TypeError, ValueError) as exc:
            nan = isinstance(value, float) and math.isnan(value)  # NaN equals nothing
            found = series.is_nan() if nan else series == value
            raise BackfillInputError(f"{where}{at(found)}: {_describe(value)} is not an "
                                     f"exact decimal(18, 8): {exc}") from None
    return series.replace_strict(distinct, pl.Series(units, dtype=pl.Int64),
                                 return_dtype=pl.Int64)


def normalise(frame: pl.DataFrame, file: InputFile) -> pl.DataFrame:
    """A collected frame of `scan` with every value checked (errors name file, column and
    row), its decimal columns in units, its timestamps in range."""
    frame = check_flags(frame, file.path, _scan(file.path), {
        "seq": "an integer", "ts_event": "a time", RECV_COLUMN: "a time"})
    for name in ("symbol", "venue", "seq", "ts_event"):
        row = first_null_row(frame, name)
        if row is not None:
            raise BackfillInputError(f"{where(file.path, name, row)}: empty value")
    for name in ("ts_event", RECV_COLUMN):
        if name not in frame.columns:
            continue
        out = frame.filter((pl.col(name) < EVENT_TIME_MIN_US) | (pl.col(name) > EVENT_TIME_MAX_US))
        if out.height:
            raise BackfillInputError(f"{where(file.path, name, int(out[ROW][0]))}: "
                                     f"{out[name][0]} us is outside 1900-2299")
    return frame.with_columns(
        to_units_series(frame[name], f"{file.path}: column {name}", frame[ROW])
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
