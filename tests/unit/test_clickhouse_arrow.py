"""Market records as Arrow tables (sinks/clickhouse/arrow.py, through the market flow's writer,
sinks/clickhouse/market_writer.py) against the row mappers (sinks/clickhouse/rows.py), the
reference: the same values, column by column, exactly.

The Arrow path builds decimal128 columns from the integer units (int64 arrays viewed at scale 8;
candle sums beyond int64 through 128-bit integers) with no `Decimal` per value; the row path
builds one exact `Decimal` per value. Both must agree on every value, NULL and empty array,
including the extremes of each column, a candle of volume-only prints (NULL prices, issue 14)
and candle versions with the writer's base; and a record that fits no row must be skipped by
both (the writer leaves it out, counts it and hands it to `on_unmapped`, which the sink turns
into an `unstorable_value` dead letter) while the others are kept.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse.flow_sink import UNMAPPABLE
from sinks.clickhouse.market_writer import MarketClickHouseWriter, market_mapper
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


def _by_rows(records: list[Any], version_base: int = 0) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    mapper = market_mapper(version_base) if version_base else to_row
    for record in records:
        table, row = mapper(record)
        out.setdefault(table, []).append(tuple(row))
    return out


def records_tables(records: list[Any], version_base: int = 0
                   ) -> tuple[list[tuple[str, pa.Table]], int]:
    """What the market flow's writer inserts for `records` (no client: its batches, as a flush
    would insert them), and how many it left out: refused when buffered (no table), as the
    sink partition does, or left out at the flush (no row)."""
    writer = MarketClickHouseWriter(None, version_base=version_base)
    left_out: list[Any] = []
    writer.on_unmapped = lambda record, _exc: left_out.append(record)
    for record in records:
        try:
            writer.buffer_record(record)
        except UNMAPPABLE:
            left_out.append(record)
    tables = writer.arrow_tables()
    assert writer.unmapped == len(left_out) - (len(records) - writer.pending)
    return tables, len(left_out)


def _by_arrow(records: list[Any], version_base: int = 0
              ) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
    tables, skipped = records_tables(records, version_base)
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
     Candle("C", 0, SECOND_US, 1, 1, 1, 1, -MAX_D38, -(10**37), -MAX_D18, 0, 0),
     # every print of the bucket volume-only (odd lots): volume, no prices (migration 0002)
     Candle("D", T0 - T0 % MINUTE_US, MINUTE_US, None, None, None, None, 50 * 10**8, 0, 0, 2,
            2)]


def test_every_table_equals_the_row_mapping_at_the_edges() -> None:
    records = [*TRADES, *QUOTES, *REJECTIONS, *CANDLES]
    got, skipped = _by_arrow(records)
    assert skipped == 0
    assert got == _by_rows(records)
    assert set(got) == {"trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m"}


def test_candle_versions_carry_the_writer_base_as_the_row_path_does() -> None:
    """Version = the writer's base + the trade count (sinks.versions.candle_version_base), in
    the Arrow batch exactly as in the rows the dead letters and `dlq replay` use."""
    base = 1_234 << 20
    records = [*TRADES[:2], *CANDLES[:2], *CANDLES[3:]]  # CANDLES[2]'s version is the maximum
    got, skipped = _by_arrow(records, base)
    assert skipped == 0
    assert got == _by_rows(records, base)
    assert [row[-1] for row in got["candles_1s"]] == [3 + base, base]
    assert got["trades"] == _by_rows(TRADES[:2])["trades"]  # only candles carry the base


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
maybe_units = st.none() | units
candles = st.builds(Candle, text, times, st.sampled_from([SECOND_US, MINUTE_US]), maybe_units,
                    maybe_units, maybe_units, maybe_units, st.integers(-MAX_D38, MAX_D38),
                    st.integers(-MAX_D38, MAX_D38),
                    units, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
rejections = st.builds(Rejection, st.sampled_from(list(TickKind)),
                       st.sampled_from(list(RejectReason)), trades | quotes, text)


@settings(max_examples=150, deadline=None)
@given(st.lists(trades | quotes | candles | rejections, min_size=1, max_size=30))
def test_random_records_equal_the_row_mapping(records: list[Any]) -> None:
    got, skipped = _by_arrow(records)
    assert skipped == 0
    assert got == _by_rows(records)
