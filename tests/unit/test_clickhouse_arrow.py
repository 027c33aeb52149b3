"""Market records as Arrow tables (sinks/clickhouse/arrow.py) against the row mappers
(sinks/clickhouse/rows.py), the reference: the same values, column by column, exactly.

The Arrow path builds decimal128 columns from the integer units (int64 arrays viewed at scale 8;
candle sums beyond int64 through 128-bit integers) with no `Decimal` per value; the row path
builds one exact `Decimal` per value. Both must agree on every value, NULL and empty array,
including the extremes of each column, and a record that fits no row must be skipped by both
(the Arrow path logs and counts it) while the others are kept.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse.arrow import records_tables
from sinks.clickhouse.rows import MAX_D18, MAX_D38, TABLE_COLUMNS, to_row
from tapeflow.core.market.candles import MINUTE_US, SECOND_US, Candle
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade

T0 = 1_767_623_400_123_456


def _as_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """An Arrow table's rows as the row mapper writes them (timestamps as integers)."""
    columns = []
    for column in table.columns:
        plain = column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column
        columns.append(plain.to_pylist())
    return list(zip(*columns, strict=True))


def _by_rows(records: list[Any]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for record in records:
        table, row = to_row(record)
        out.setdefault(table, []).append(tuple(row))
    return out


def _by_arrow(records: list[Any]) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
    tables, skipped = records_tables(records)
    for name, table in tables:
        assert table.column_names == list(TABLE_COLUMNS[name])
    return {name: _as_rows(table) for name, table in tables}, skipped


TRADES = [
    Trade("A", "XNAS", T0, 1, 18_912_000_000, 10_000_000_000, "t-1", ("@", "F")),
    Trade("A", "XNAS", T0 + 1, 2, MAX_D18, 1, None, ()),
    Trade("B", "ARCX", -1, 2**62, -MAX_D18, MAX_D18, "", ("T",)),
    Trade("Ünïcødé 株式", "X", EVENT_TIME_MIN_US, -(2**63), 0, -1, "'; --", ()),
]
QUOTES = [Quote("A", "XNAS", T0, 5, 1, 2, 3, 4),
          Quote("B", "BATS", EVENT_TIME_MAX_US, 6, -MAX_D18, 0, MAX_D18, 8)]
REJECTIONS = [
    Rejection(TickKind.TRADE, RejectReason.NON_POSITIVE_PRICE, TRADES[3], "price 0"),
    Rejection(TickKind.QUOTE, RejectReason.CROSSED_QUOTE, QUOTES[1], "bid > ask"),
    Rejection(TickKind.TRADE, RejectReason.TOO_LATE, TRADES[0], ""),
]
CANDLES = [
    Candle("A", T0 - T0 % width, width, 100, 300, 50, 200, 7 * 10**8, 1_400 * 10**16, 200, 3, 3)
    for width in (SECOND_US, MINUTE_US)
] + [Candle("B", 0, MINUTE_US, 1, MAX_D18, 1, MAX_D18, MAX_D38, 10**37 + 1, MAX_D18, 2**64 - 1,
            2**64 - 1),
     Candle("C", 0, SECOND_US, 1, 1, 1, 1, -MAX_D38, -(10**37), -MAX_D18, 0, 0)]


def test_every_table_equals_the_row_mapping_at_the_edges() -> None:
    records = [*TRADES, *QUOTES, *REJECTIONS, *CANDLES]
    got, skipped = _by_arrow(records)
    assert skipped == 0
    assert got == _by_rows(records)
    assert set(got) == {"trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m"}


def test_tables_come_in_first_record_order_and_rows_in_record_order() -> None:
    records = [QUOTES[1], TRADES[2], QUOTES[0], TRADES[0]]
    tables, _ = records_tables(records)
    assert [name for name, _ in tables] == ["quotes", "trades"]
    assert _as_rows(tables[1][1]) == [tuple(to_row(t)[1]) for t in (TRADES[2], TRADES[0])]


def test_a_record_that_fits_no_row_is_skipped_and_the_others_kept() -> None:
    bad = [TRADES[0]._replace(price=MAX_D18 + 1),
           QUOTES[0]._replace(ts_event=EVENT_TIME_MAX_US + 1),
           CANDLES[0]._replace(volume=MAX_D38 + 1), TRADES[1]._replace(seq=2**63),
           CANDLES[0]._replace(width_us=7), CANDLES[1]._replace(version=-1)]
    good = [*TRADES, *QUOTES, *CANDLES]
    got, skipped = _by_arrow([*bad[:3], *good, *bad[3:]])
    assert skipped == len(bad)
    assert got == _by_rows(good)


units = st.integers(-MAX_D18, MAX_D18)
times = st.integers(EVENT_TIME_MIN_US, EVENT_TIME_MAX_US)
text = st.text(max_size=8)
trades = st.builds(Trade, text, text, times, st.integers(-(2**63), 2**63 - 1), units, units,
                   st.none() | text, st.lists(text, max_size=3).map(tuple))
quotes = st.builds(Quote, text, text, times, st.integers(-(2**63), 2**63 - 1), units, units,
                   units, units)
candles = st.builds(Candle, text, times, st.sampled_from([SECOND_US, MINUTE_US]), units, units,
                    units, units, st.integers(-MAX_D38, MAX_D38), st.integers(-MAX_D38, MAX_D38),
                    units, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
rejections = st.builds(Rejection, st.sampled_from(list(TickKind)),
                       st.sampled_from(list(RejectReason)), trades | quotes, text)


@settings(max_examples=150, deadline=None)
@given(st.lists(trades | quotes | candles | rejections, min_size=1, max_size=30))
def test_random_records_equal_the_row_mapping(records: list[Any]) -> None:
    got, skipped = _by_arrow(records)
    assert skipped == 0
    assert got == _by_rows(records)
