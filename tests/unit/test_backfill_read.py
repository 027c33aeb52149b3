"""Backfill input normalisation: every accepted representation gives the same core ticks.

Table-driven over price/size types (decimal, string, float, integer), `ts_event` types
(timestamp in several units and zones, integer microseconds, ISO text in CSV), file formats
(Parquet, CSV) and path forms (file, glob, directory); a hypothesis property pins the float
conversion to Decimal(repr(f)) scaled by 10**8; the bad inputs give one-line errors.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.backfill_fold import NO_ORIGIN, batch_config
from sources.files.ticks import (
    BackfillInputError,
    InputFile,
    Window,
    expand_paths,
    normalise,
    open_inputs,
    quotes_of,
    scan,
    to_units_series,
    trades_of,
)
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.symbol_step import (
    DEFAULT_MARKET_CONFIG,
    Arrival,
    Output,
    SymbolState,
    on_arrival_inplace,
    on_end_inplace,
)
from tapeflow.core.models import Quote, Trade

T0 = 1_767_600_000_123_456  # 2026-01-05T08:00:00.123456Z
EXPECTED = [
    Trade("AAA", "X", T0, 1, 10_000_000, 100 * 10**8, "t1", ("I",)),
    Trade("AAA", "X", T0 + 1, 2, 12_345_678_900, 5 * 10**7, None, ()),
    Trade("BBB", "Y", T0 + 2_000_000, 1, 99_999_999_999, 1, "t3", ("F", "I")),
]
PRICES = ["0.1", "123.456789", "999.99999999"]
SIZES = ["100", "0.5", "0.00000001"]


def _frame(price: Any, size: Any, ts: Any) -> pl.DataFrame:
    return pl.DataFrame({
        "symbol": [t.symbol for t in EXPECTED],
        "venue": [t.venue for t in EXPECTED],
        "ts_event": ts,
        "seq": [t.seq for t in EXPECTED],
        "price": price,
        "size": size,
        "trade_id": [t.trade_id for t in EXPECTED],
        "conditions": [list(t.conditions) for t in EXPECTED],
    })


_INT_US = pl.Series([t.ts_event for t in EXPECTED], dtype=pl.Int64)
TIMESTAMPS: dict[str, Any] = {
    "int micros": _INT_US,
    "timestamp us UTC": _INT_US.cast(pl.Datetime("us", "UTC")),
    "timestamp ns naive": (_INT_US * 1000).cast(pl.Datetime("ns")),
    "timestamp us New York": _INT_US.cast(pl.Datetime("us", "UTC"))
    .dt.convert_time_zone("America/New_York"),
}
NUMBERS: dict[str, tuple[Any, Any]] = {
    "decimal(18, 8)": (pl.Series(PRICES).cast(pl.Decimal(18, 8)),
                       pl.Series(SIZES).cast(pl.Decimal(18, 8))),
    "decimal(30, 10)": (pl.Series(PRICES).cast(pl.Decimal(30, 10)),
                        pl.Series(SIZES).cast(pl.Decimal(30, 10))),
    "string": (PRICES, SIZES),
    "float": ([float(p) for p in PRICES], [float(s) for s in SIZES]),
}


def _load(path: Path) -> list[Trade]:
    files, _ = open_inputs([path])
    out: list[Trade] = []
    for f in files:
        assert f.kind == "trade"
        out += trades_of(normalise(scan(f).collect(), f))
    return out


@pytest.mark.parametrize("numbers", sorted(NUMBERS))
@pytest.mark.parametrize("stamps", sorted(TIMESTAMPS))
def test_parquet_representations_give_the_same_trades(numbers: str, stamps: str,
                                                      tmp_path: Path) -> None:
    price, size = NUMBERS[numbers]
    path = tmp_path / "t.parquet"
    _frame(price, size, TIMESTAMPS[stamps]).write_parquet(path)
    assert _load(path) == EXPECTED


@pytest.mark.parametrize("stamps", ["int", "iso"])
def test_csv_gives_the_same_trades(stamps: str, tmp_path: Path) -> None:
    ts: list[Any] = [t.ts_event for t in EXPECTED]
    if stamps == "iso":
        ts = [f"{datetime.fromtimestamp(u // 10**6, UTC):%Y-%m-%dT%H:%M:%S}.{u % 10**6:06d}Z"
              for u in ts]
    frame = _frame(PRICES, SIZES, ts).with_columns(
        pl.col("conditions").list.join(";"))
    path = tmp_path / "trades.csv"
    frame.write_csv(path)
    assert _load(path) == EXPECTED


def test_quotes_are_told_from_trades_by_their_columns(tmp_path: Path) -> None:
    quote = Quote("AAA", "X", T0, 7, 10_000_000, 10**8, 11_000_000, 2 * 10**8)
    path = tmp_path / "book.parquet"
    pl.DataFrame({"symbol": ["AAA"], "venue": ["X"], "ts_event": [T0], "seq": [7],
                  "bid_px": ["0.1"], "bid_sz": [1.0], "ask_px": [0.11], "ask_sz": ["2"]}
                 ).write_parquet(path)
    files, _ = open_inputs([path])
    assert [f.kind for f in files] == ["quote"]
    assert quotes_of(normalise(scan(files[0]).collect(), files[0])) == [quote]


def test_globs_and_directories_find_the_files_in_order(tmp_path: Path) -> None:
    frame = _frame(PRICES, SIZES, _INT_US)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.parquet", "d/a.csv", "d/sub/c.parquet"):
        target = tmp_path / name
        if target.suffix == ".csv":
            frame.with_columns(pl.col("conditions").list.join(";")).write_csv(target)
        else:
            frame.write_parquet(target)
    (tmp_path / "d" / "notes.txt").write_text("not data")
    found = [p.relative_to(tmp_path.resolve()).as_posix()
             for p, _ in expand_paths([tmp_path / "d"])]
    assert found == ["d/a.csv", "d/b.parquet", "d/sub/c.parquet"]
    globbed = [p.name for p, _ in expand_paths([str(tmp_path / "d" / "**" / "*.parquet")])]
    assert globbed == ["b.parquet", "c.parquet"]
    assert _load(tmp_path / "d") == EXPECTED * 3


def test_window_keeps_symbols_and_event_time(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    _frame(PRICES, SIZES, _INT_US).write_parquet(path)
    file = InputFile(path, "trade", ())
    window = Window(frozenset({"AAA"}), start_us=T0 + 1, end_us=T0 + 2)
    assert trades_of(normalise(scan(file, window).collect(), file)) == [EXPECTED[1]]


@pytest.mark.parametrize(("values", "message"), [
    (["0.123456789"], "not an exact decimal(18, 8)"),
    (["abc"], "not an exact decimal(18, 8)"),
    ([float("nan")], "not an exact decimal(18, 8)"),
    ([float("inf")], "not an exact decimal(18, 8)"),
    (["10000000000"], "not an exact decimal(18, 8)"),
    ([10_000_000_000], "exceeds decimal(18, 8)"),
    (["1.5", None], "empty value"),
])
def test_values_that_are_not_exact_decimals_are_refused(values: list[Any],
                                                        message: str) -> None:
    with pytest.raises(BackfillInputError, match=re.escape(message)) as err:
        to_units_series(pl.Series(values), "f.parquet: column price")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("f.parquet: column price")


@pytest.mark.parametrize(("frame", "message"), [
    (pl.DataFrame({"symbol": ["A"], "price": [1.0], "size": [1.0]}),
     "trade file without column(s) venue, ts_event, seq"),
    (pl.DataFrame({"symbol": ["A"], "x": [1]}), "neither trades"),
])
def test_missing_columns_are_named(frame: pl.DataFrame, message: str,
                                   tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    frame.write_parquet(path)
    with pytest.raises(BackfillInputError, match=re.escape(message)):
        open_inputs([path])


def test_a_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackfillInputError, match="no such file or directory"):
        open_inputs([tmp_path / "missing.parquet"])
    with pytest.raises(BackfillInputError, match="no Parquet or CSV file matches"):
        open_inputs([str(tmp_path / "*.parquet")])


def _reference_units(f: float) -> int | None:
    """The specification: the shortest repr, scaled by 10**8; None if not exact in range."""
    scaled = Decimal(repr(f)).scaleb(8)
    if scaled != scaled.to_integral_value() or abs(scaled) > 10**18 - 1:
        return None
    return int(scaled)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_float_units_are_the_shortest_repr_scaled(values: list[float]) -> None:
    expected = [_reference_units(f) for f in values]
    if None in expected:
        with pytest.raises(BackfillInputError):
            to_units_series(pl.Series(values, dtype=pl.Float64), "p")
    else:
        got = to_units_series(pl.Series(values, dtype=pl.Float64), "p").to_list()
        assert got == expected


@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=20))
def test_floats_of_eight_decimals_convert_exactly(units: list[int]) -> None:
    """Prices as people write them (at most 8 decimals, 15 digits) always convert, to the
    units they were written from: 0.1 is 10,000,000, not its binary expansion."""
    floats = [float(Decimal(u).scaleb(-8)) for u in units]
    assert to_units_series(pl.Series(floats, dtype=pl.Float64), "p").to_list() == units


def _merged_order(trade_keys: list[int], quote_keys: list[int]) -> list[int]:
    """The order in which the backfill's step (`jobs.backfill_fold`: the stream's
    `on_arrival_inplace` with `batch_config`, a symbol's trades handed in before its quotes)
    judges the ticks: i >= 0 is trade i, ~i quote i."""
    config = batch_config(DEFAULT_MARKET_CONFIG)
    trades = [Trade("M", "X", T0 + k, 1 + i, ONE, ONE, None, ()) for i, k in enumerate(trade_keys)]
    quotes = [Quote("M", "X", T0 + k, 1 + i, ONE, ONE, ONE, ONE) for i, k in enumerate(quote_keys)]
    index = {id(t): i for i, t in enumerate(trades)} | {id(q): ~i for i, q in enumerate(quotes)}
    state, outputs = SymbolState(), list[Output]()
    for tick in [*trades, *quotes]:
        state, out = on_arrival_inplace(state, Arrival(tick, None, NO_ORIGIN), None, config)
        outputs += out
    outputs += on_end_inplace(state, config)[1]
    judged = [o.tick if isinstance(o, Rejection) else o for o in outputs]
    return [index[id(t)] for t in judged if isinstance(t, (Trade, Quote))]


@pytest.mark.parametrize(("trades", "quotes", "order"), [
    ([1, 2, 3], [], [0, 1, 2]),
    ([], [1, 2], [~0, ~1]),
    ([5], [5], [~0, 0]),  # a quote first on equal keys
    ([1, 9, 4], [3, 8], [0, ~0, ~1, 1, 2]),  # each kind keeps its own (arrival) order
    ([10, 2], [5], [~0, 0, 1]),
    ([10**10, 2 * 10**10], [5], [~0, 0, 1]),  # hours ahead: the batch merge still waits
])
def test_merged_order_is_the_two_pointer_merge(trades: list[int], quotes: list[int],
                                               order: list[int]) -> None:
    assert _merged_order(trades, quotes) == order


# Issue 14: timestamps in another unit, float sequence numbers and values that do not parse.

MS, S = [t.ts_event // 1_000 for t in EXPECTED], [t.ts_event // 1_000_000 for t in EXPECTED]


def _exact_at(unit: int) -> list[Trade]:
    """EXPECTED with times cut to what `unit` (µs per unit) can hold."""
    return [t._replace(ts_event=t.ts_event - t.ts_event % unit) for t in EXPECTED]


@pytest.mark.parametrize(("values", "want"), [
    (_INT_US, EXPECTED),
    (pl.Series([t.ts_event * 1_000 + 999 for t in EXPECTED]), EXPECTED),  # ns, floored
    (pl.Series(MS), _exact_at(1_000)),
    (pl.Series(S), _exact_at(1_000_000)),
])
def test_integer_times_in_any_unit_are_read_in_that_unit(values: pl.Series, want: list[Trade],
                                                         tmp_path: Path) -> None:
    """Before, 1767600000123 (ms, 2026-01-05) was read as µs: 1970-01-21, and accepted."""
    path = tmp_path / "t.parquet"
    _frame(PRICES, SIZES, values).write_parquet(path)
    assert _load(path) == want
    csv = tmp_path / "t.csv"
    _frame(PRICES, SIZES, values).with_columns(pl.col("conditions").list.join(";")) \
        .write_csv(csv)
    assert _load(csv) == want


def _refused(tmp_path: Path, name: str, frame: pl.DataFrame) -> str:
    """The one-line error the backfill gives for `frame` written as `name`."""
    path = tmp_path / name
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    with pytest.raises(BackfillInputError) as err:
        _load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    return message.removeprefix(f"{path}: ")


def _bad(column: str, values: list[Any]) -> pl.DataFrame:
    """Three good trades with `column` replaced by `values`."""
    frame = _frame(PRICES, SIZES, _INT_US).drop("conditions")
    return frame.with_columns(pl.Series(column, values))


@pytest.mark.parametrize(("name", "column", "values", "message"), [
    ("t.parquet", "ts_event", [T0, T0 // 1000, T0],
     "column ts_event, row 2: 1767600000123 looks like milliseconds where row 1 "
     "(1767600000123456) is in microseconds: one unit per column"),
    ("t.parquet", "ts_event", [1234, T0, T0],
     "column ts_event, row 1: 1234 is not a time in seconds, milliseconds, microseconds or "
     "nanoseconds since the epoch between 1973 and 2299"),
    ("t.parquet", "ts_event", [T0, T0, 50 * 10**10],
     "column ts_event, row 3: 500000000000 looks like milliseconds where row 1"),
    ("t.csv", "ts_event", [str(T0), str(T0 + 1), "yesterday"],
     "column ts_event, row 3: 'yesterday' is not a time"),
    ("t.csv", "ts_event", ["2026-01-05T08:00:00Z", "2026-13-45T00:00:00Z", "2026-01-05"],
     "column ts_event, row 2: '2026-13-45T00:00:00Z' is not a time"),
    ("t.parquet", "ts_event", [1.5e15, 1.5e15, 1.5e15],
     "column ts_event has type Float64: want a timestamp"),
    ("t.parquet", "seq", [1.0, 2.0, 3.0],
     "column seq holds floating-point numbers (row 1 is 1.0): sequence numbers must be "
     "integers"),
    ("t.parquet", "seq", [None, 1.7, 2.0], "column seq holds floating-point numbers (row 2 is "
     "1.7)"),
    ("t.csv", "seq", ["1", "2.5", "3"], "column seq, row 2: '2.5' is not an integer"),
    ("t.csv", "seq", ["1", "2", "x"], "column seq, row 3: 'x' is not an integer"),
    ("t.csv", "seq", ["1", "99999999999999999999", "3"],
     "column seq, row 2: '99999999999999999999' is not an integer"),
    ("t.parquet", "seq", ["1", "two", "3"], "column seq, row 2: 'two' is not an integer"),
    ("t.parquet", "seq", [1, None, 3], "column seq, row 2: empty value"),
    ("t.parquet", "symbol", ["A", "B", None], "column symbol, row 3: empty value"),
    ("t.csv", "price", ["1", "2", "1.123456789"],
     "column price, row 3: '1.123456789' is not an exact decimal(18, 8)"),
    ("t.parquet", "size", [1.0, float("nan"), 2.0],
     "column size, row 2: nan is not an exact decimal(18, 8)"),
    ("t.parquet", "ts_recv", [T0, "not a time", T0], "column ts_recv, row 2: 'not a time' "
     "is not a time"),
])
def test_values_that_do_not_read_are_one_line_naming_file_column_and_row(
        tmp_path: Path, name: str, column: str, values: list[Any], message: str) -> None:
    """Before: a polars traceback (text that does not parse), a silent truncation (a float
    seq), or a silent misreading (times in ms)."""
    if column == "ts_recv":
        values = [str(v) for v in values]
    assert _refused(tmp_path, name, _bad(column, values)).startswith(message)


def test_a_window_does_not_hide_a_row_that_does_not_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _bad("ts_event", [str(T0), "garbage", str(T0 + 2)]).write_csv(path)
    files, _ = open_inputs([path])
    frame = scan(files[0], Window(start_us=T0 + 1)).collect()
    with pytest.raises(BackfillInputError, match="column ts_event, row 2: 'garbage'"):
        normalise(frame, files[0])
