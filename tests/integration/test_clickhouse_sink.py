"""The ClickHouse sink against the real embedded engine (chDB): exact round trips, idempotence
under replay, late corrections, hostile symbols, batching bounds, retries and range errors.

Tests share the session's database, so each one writes its own symbols (a per-test tag) and
reads only those.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from jobs.init import init_clickhouse
from sinks.clickhouse.market_writer import MarketClickHouseWriter
from sinks.clickhouse.rows import MAX_D18, MAX_D38, TABLE_COLUMNS, RowRangeError, to_row
from sinks.clickhouse.writer import ClickHouseWriteError, ClickHouseWriter
from tapeflow.core.market.candles import (
    MINUTE_US,
    SECOND_US,
    Candle,
    CandleState,
    add_trade_inplace,
)
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
from tapeflow.core.market.sequence import SeqMode
from tapeflow.core.market.tick_filter import filter_trade_inplace
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, Quote, Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WHEN = datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)
T0 = (WHEN - EPOCH) // timedelta(microseconds=1)
HOSTILE = ["O'Brien", 'say "hi"', "back\\slash", "'; DROP TABLE trades; --", "Ünïcødé 株式 😀",
           "tab\tnew\nline", "{sym:String}", "%s %(x)s ?", "`x`", "\x00nul"]


@pytest.fixture
def client(settings: Settings) -> Any:
    init_clickhouse(settings)
    return open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)


@pytest.fixture
def tag() -> str:
    return f"T{uuid.uuid4().hex[:8]}-"


def _d(units: int, scale: int = 8) -> Decimal:
    """The expected Decimal, built independently of the code under test (string parse: exact)."""
    return Decimal(f"{units}E-{scale}")


def _read(client: Any, table: str, symbols: Sequence[str],
          final: bool = True) -> list[tuple[Any, ...]]:
    """The table's rows for `symbols` in its column order, timestamps as integer microseconds."""
    cols = ", ".join(TABLE_COLUMNS[table])
    result = client.query(
        f"SELECT {cols} FROM {table} {'FINAL' if final else ''} "
        "WHERE has({syms:Array(String)}, symbol) ORDER BY ALL",
        parameters={"syms": list(symbols)}, query_formats={"DateTime64*": "int"},
    )
    return [tuple(row) for row in result.result_rows]


def _count(client: Any, table: str, symbols: Sequence[str]) -> int:
    return int(client.query(f"SELECT count() FROM {table} WHERE has({{s:Array(String)}}, symbol)",
                            parameters={"s": list(symbols)}).result_rows[0][0])


def _write(client: Any, records: Sequence[Any], **kwargs: Any) -> ClickHouseWriter:
    with ClickHouseWriter(client, **kwargs) as writer:
        writer.add_records(records)
    return writer


def _records(tag: str) -> dict[str, tuple[list[Any], list[tuple[Any, ...]]]]:
    """Per table: core records and the rows they must read back as."""
    a, b = f"{tag}A", f"{tag}B"
    trades = [
        Trade(a, "XNAS", T0, 1, 18_912_000_000, 10_000_000_000, "t-1", ("@", "F")),
        Trade(a, "XNAS", T0 + 1, 2, MAX_D18, 1, None, ()),
        Trade(b, "ARCX", -1, 2**62, 1, MAX_D18, "", ("T",)),
    ]
    trade_rows = [
        (a, "XNAS", T0, 1, Decimal("189.12"), Decimal("100"), "t-1", ["@", "F"]),
        (a, "XNAS", T0 + 1, 2, Decimal("9999999999.99999999"), Decimal("0.00000001"), None, []),
        (b, "ARCX", -1, 2**62, _d(1), _d(MAX_D18), "", ["T"]),
    ]
    quotes = [Quote(a, "XNAS", T0, 5, 1, 2, 3, 4), Quote(b, "BATS", T0, 6, -MAX_D18, 0, 7, 8)]
    quote_rows = [(a, "XNAS", T0, 5, _d(1), _d(2), _d(3), _d(4)),
                  (b, "BATS", T0, 6, _d(-MAX_D18), _d(0), _d(7), _d(8))]
    rejected = [
        Rejection(TickKind.TRADE, RejectReason.NON_POSITIVE_PRICE, trades[0]._replace(price=0),
                  "price 0"),
        Rejection(TickKind.QUOTE, RejectReason.CROSSED_QUOTE, quotes[0], "bid > ask"),
    ]
    rejected_rows = [
        ("quote", "crossed_quote", a, "XNAS", T0, 5, None, None, None, [],
         _d(1), _d(2), _d(3), _d(4), "bid > ask"),
        ("trade", "non_positive_price", a, "XNAS", T0, 1, Decimal(0), Decimal(100), "t-1",
         ["@", "F"], None, None, None, None, "price 0"),
    ]
    out: dict[str, tuple[list[Any], list[tuple[Any, ...]]]] = {
        "trades": (trades, trade_rows), "quotes": (quotes, quote_rows),
        "rejected_ticks": (rejected, rejected_rows),
    }
    for width, table in ((SECOND_US, "candles_1s"), (MINUTE_US, "candles_1m")):
        bucket = T0 - T0 % width
        candles = [
            Candle(a, bucket, width, 100, 300, 50, 200, 7 * 10**8, 1_400 * 10**16, 200, 3, 1),
            Candle(b, bucket, width, 1, MAX_D18, 1, MAX_D18, MAX_D38, 10**37 + 1, MAX_D18,
                   2**64 - 1, 2**64 - 1),
        ]
        rows = [
            (a, bucket, _d(100), _d(300), _d(50), _d(200), Decimal(7), Decimal(1_400), _d(200),
             3, 1),
            (b, bucket, _d(1), _d(MAX_D18), _d(1), _d(MAX_D18), _d(MAX_D38), _d(10**37 + 1, 16),
             _d(MAX_D18), 2**64 - 1, 2**64 - 1),
        ]
        out[table] = (candles, rows)
    return out


TABLES = ["trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m"]


def test_timestamp_round_trips_with_microsecond_precision(client: Any, tag: str) -> None:
    sym = f"{tag}TS"
    edges = [T0, T0 - 123_456 + 999_999, -1, 0, EVENT_TIME_MIN_US, EVENT_TIME_MAX_US]
    _write(client, [Trade(sym, "XNAS", ts, i, 1, 1) for i, ts in enumerate(edges)])
    got = client.query(
        "SELECT seq, toUnixTimestamp64Micro(ts_event), toString(ts_event), ts_event FROM trades "
        "FINAL WHERE symbol = {s:String} ORDER BY seq", parameters={"s": sym}).result_rows
    assert [row[1] for row in got] == edges
    assert got[0][2] == "2026-01-05 14:30:00.123456"
    assert got[1][2] == "2026-01-05 14:30:00.999999"
    assert got[2][2] == "1969-12-31 23:59:59.999999"
    assert (got[4][2], got[5][2]) == ("1900-01-01 00:00:00.000000", "2299-12-31 23:59:59.999999")
    as_datetime = got[0][3]
    assert as_datetime.replace(tzinfo=as_datetime.tzinfo or UTC) == WHEN


@pytest.mark.parametrize("table", TABLES)
def test_every_mapper_round_trips_exactly(client: Any, tag: str, table: str) -> None:
    records, expected = _records(tag)[table]
    assert {to_row(r)[0] for r in records} == {table}
    _write(client, records)
    assert _read(client, table, [f"{tag}A", f"{tag}B"]) == sorted(expected, key=_sort_key)


def _write_arrow(client: Any, records: Sequence[Any], **kwargs: Any
                 ) -> MarketClickHouseWriter:
    """The market flow's way: records buffered by its writer, Arrow tables built at the flush
    (`sinks.clickhouse.arrow`), one `insert_arrow` per table."""
    with MarketClickHouseWriter(client, **kwargs) as writer:
        for record in records:
            writer.add_record(record)
    return writer


@pytest.mark.parametrize("table", TABLES)
def test_arrow_tables_land_exactly_as_the_rows_do(client: Any, tag: str, table: str) -> None:
    """The Arrow path (decimal128 from integer units) stores the values the row path stores,
    edges included, and a replay through either path (other batches, other order) changes
    nothing."""
    records, expected = _records(tag)[table]
    symbols = [f"{tag}A", f"{tag}B"]
    writer = _write_arrow(client, records)
    assert writer.rows_written == len(records) and writer.pending == 0
    assert _read(client, table, symbols) == sorted(expected, key=_sort_key)
    _write_arrow(client, records[::-1], max_rows=1)
    _write(client, records)
    assert _read(client, table, symbols) == sorted(expected, key=_sort_key)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # ClickHouse's ORDER BY ALL puts NULL last; mirror it for the expected rows.
    return tuple((v is None, v if v is not None else 0) for v in row)


@pytest.mark.parametrize("table", TABLES)
def test_writing_the_same_batch_twice_leaves_the_same_rows(client: Any, tag: str,
                                                           table: str) -> None:
    records, _ = _records(tag)[table]
    symbols = [f"{tag}A", f"{tag}B"]
    _write(client, records)
    once = _read(client, table, symbols)
    _write(client, records)
    _write(client, records[::-1], max_rows=1)  # a replay in other batches and order
    assert _read(client, table, symbols) == once
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    assert _count(client, table, symbols) == len(once) == len(records)
    assert _read(client, table, symbols, final=False) == once


@pytest.mark.parametrize("width", [SECOND_US, MINUTE_US])
def test_a_late_correction_replaces_the_candle_and_a_replayed_old_version_does_not(
        client: Any, tag: str, width: int) -> None:
    sym = f"{tag}C"
    table = to_row(Candle(sym, 0, width, 1, 1, 1, 1, 1, 1, 1, 1, 1))[0]
    v1 = Candle(sym, T0 - T0 % width, width, 100, 100, 100, 100, 10**8, 100 * 10**16, 100, 1, 1)
    v2 = v1._replace(high=120, close=120, volume=2 * 10**8, notional=220 * 10**16, vwap=110,
                     trade_count=2, version=2)
    _write(client, [v1])
    _write(client, [v2])
    _write(client, [v1])  # a replay after a crash re-sends the old version: it must not win
    assert _read(client, table, [sym]) == [to_row(v2)[1]]


def test_the_core_candle_fold_and_its_correction_land_as_the_last_version(client: Any,
                                                                          tag: str) -> None:
    sym = f"{tag}F"
    state, out = CandleState(), []
    trades = [(T0, 1, 100), (T0 + 100, 2, 102), (T0 + 10 * SECOND_US, 3, 101), (T0 + 500, 4, 90)]
    for ts, seq, price in trades:
        state, candles, rejection = add_trade_inplace(state, Trade(sym, "X", ts, seq, price * 10**8,
                                                           10**8))
        assert rejection is None
        out.extend(candles)
    final_1s = [c for c in out if c.width_us == SECOND_US and c.bucket == T0 - T0 % SECOND_US]
    # Version = trade count: two trades when first final, three once corrected.
    assert [(c.version, c.trade_count) for c in final_1s] == [(2, 2), (3, 3)]
    _write(client, out)
    (row,) = _read(client, "candles_1s", [sym])
    assert row == to_row(final_1s[-1])[1]
    assert (row[5], row[10]) == (Decimal(90), 3)  # close = the late trade, version 3


def test_rejected_ticks_keep_each_distinct_tick_and_collapse_identical_resends(
        client: Any, tag: str) -> None:
    """A tick sent three times: accepted, then two identical duplicate_seq rejections, which are
    one audit row (indistinguishable from a replay). A re-send of the same seq with another
    price is a different tick: its own row. A replay of everything changes nothing."""
    sym = f"{tag}R"
    state, rejections = FilterState(), []
    tick = Trade(sym, "XNAS", T0, 1, 100 * 10**8, 10**8)
    # A venue numbering every message: a re-sent number is a duplicate whatever its content
    # (on a packet venue, the default, the fourth tick would be another message of packet 1).
    unique = FilterConfig(seq_mode=SeqMode.UNIQUE)
    for t in [tick, tick, tick, tick._replace(price=101 * 10**8)]:
        state, rejection, _ = filter_trade_inplace(state, t, None, unique)
        if rejection is not None:
            rejections.append(rejection)
    assert [r.reason for r in rejections] == [RejectReason.DUPLICATE_SEQ] * 3
    assert rejections[0] == rejections[1]
    _write(client, rejections)
    rows = _read(client, "rejected_ticks", [sym])
    assert [(r[1], r[6]) for r in rows] == [("duplicate_seq", Decimal(100)),
                                            ("duplicate_seq", Decimal(101))]
    _write(client, rejections)
    assert _read(client, "rejected_ticks", [sym]) == rows


def test_symbols_with_quotes_unicode_and_sql_metacharacters_are_stored_intact(
        client: Any, tag: str) -> None:
    symbols = [f"{tag}{s}" for s in HOSTILE]
    records: list[Any] = []
    for i, s in enumerate(symbols):
        trade = Trade(s, "v'\"", T0, i, 10**8, 10**8, s, (s,))
        records += [trade, Quote(s, "X", T0, i, 1, 1, 2, 1),
                    Rejection(TickKind.TRADE, RejectReason.UNKNOWN_SYMBOL, trade, s),
                    Candle(s, T0 - T0 % SECOND_US, SECOND_US, 1, 1, 1, 1, 1, 1, 1, 1, 1)]
    _write(client, records)
    for table in ("trades", "quotes", "rejected_ticks", "candles_1s"):
        expected = sorted(to_row(r)[1] for r in records if to_row(r)[0] == table)
        got = _read(client, table, symbols)
        assert sorted(got) == expected, table
    assert _count(client, "trades", ["'; DROP TABLE trades; --"]) == 0  # and nothing ran


def test_flush_by_size(client: Any, tag: str) -> None:
    sym = f"{tag}S"
    rows = [to_row(Trade(sym, "X", T0, i, 1, 1))[1] for i in range(10)]
    writer = ClickHouseWriter(client, max_rows=3, max_age_s=3600)
    assert writer.add("trades", rows[0]) == 0
    assert writer.add("trades", rows[1]) == 0
    assert (_count(client, "trades", [sym]), writer.pending) == (0, 2)
    assert writer.add("trades", rows[2]) == 3
    assert (_count(client, "trades", [sym]), writer.pending) == (3, 0)
    assert writer.add_many("trades", iter(rows[3:])) == 6  # batches of at most 3
    assert (writer.pending, writer.batches_written) == (1, 3)
    assert writer.flush() == 1
    assert [r[3] for r in _read(client, "trades", [sym])] == list(range(10))


def test_flush_by_age_with_time_passed_in_or_from_the_clock(client: Any, tag: str) -> None:
    sym = f"{tag}G"
    rows = [to_row(Trade(sym, "X", T0, i, 1, 1))[1] for i in range(4)]
    writer = ClickHouseWriter(client, max_rows=1000, max_age_s=5.0)
    assert writer.add("trades", rows[0], now=100.0) == 0
    assert writer.add("trades", rows[1], now=104.0) == 0  # the oldest row sets the age
    assert not writer.due(now=104.9)
    assert writer.flush_if_due(now=104.9) == 0
    assert writer.flush_if_due(now=105.0) == 2
    assert _count(client, "trades", [sym]) == 2

    clock = [0.0]
    timed = ClickHouseWriter(client, max_rows=1000, max_age_s=1.0, clock=lambda: clock[0])
    timed.add("trades", rows[2])
    clock[0] = 0.5
    assert timed.add("trades", rows[3]) == 0
    clock[0] = 1.0
    assert timed.flush_if_due() == 2
    assert _count(client, "trades", [sym]) == 4


def _pressure_table(client: Any, tag: str) -> str:
    """A table whose engine refuses a second part (TOO_MANY_PARTS, a real transient error)."""
    name = f"pressure_{tag.strip('-').lower()}"
    client.command(f"CREATE TABLE {name} (k String, v UInt64) ENGINE = ReplacingMergeTree "
                   "ORDER BY k SETTINGS parts_to_throw_insert = 1, parts_to_delay_insert = 1, "
                   "max_delay_to_insert = 0")
    client.insert(name, [["first", 0]], column_names=["k", "v"])
    return name


def test_transient_errors_are_retried_with_backoff_then_raise_clearly(client: Any,
                                                                      tag: str) -> None:
    table = _pressure_table(client, tag)
    sleeps: list[float] = []
    relieve = [False]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if relieve[0]:  # the merges catch up while we back off
            client.command(f"ALTER TABLE {table} MODIFY SETTING parts_to_throw_insert = 3000, "
                           "parts_to_delay_insert = 1500")

    writer = ClickHouseWriter(client, attempts=3, backoff_s=0.01, columns={table: ("k", "v")},
                              sleep=sleep)
    writer.add(table, ("second", 1))
    with pytest.raises(ClickHouseWriteError, match=rf"1 rows into {table} failed 3 times on "
                       r"transient errors \(gives up after 3 attempts\); last: .*Too many parts"
                       ) as info:
        writer.flush()
    assert (info.value.transient, info.value.attempts, len(sleeps)) == (True, 3, 2)
    assert all(0 < s <= 0.05 for s in sleeps)
    assert writer.pending == 1  # nothing dropped

    relieve[0] = True
    assert writer.flush() == 1
    assert (writer.pending, writer.retries) == (0, 3)
    assert client.query(f"SELECT k FROM {table} FINAL ORDER BY k").result_rows == [
        ("first",), ("second",)]


def test_a_permanent_error_is_not_retried_and_keeps_the_unwritten_tables(client: Any,
                                                                         tag: str) -> None:
    sym = f"{tag}P"
    sleeps: list[float] = []
    writer = ClickHouseWriter(client, sleep=sleeps.append,
                              columns={**TABLE_COLUMNS, "no_such_table": ("k",)})
    writer.add("trades", to_row(Trade(sym, "X", T0, 1, 1, 1))[1])
    writer.add("no_such_table", ("x",))
    with pytest.raises(ClickHouseWriteError, match="no_such_table failed and is not retryable"
                       ) as info:
        writer.flush()
    assert (info.value.transient, sleeps) == (False, [])
    assert _count(client, "trades", [sym]) == 1  # written before the failing table
    assert writer.pending == 1
    with pytest.raises(KeyError, match="no column list for table 'other'"):
        writer.add("other", ("x",))


def test_values_beyond_a_column_range_raise_before_anything_is_written(client: Any,
                                                                        tag: str) -> None:
    sym = f"{tag}O"
    ok = Candle(sym, T0 - T0 % SECOND_US, SECOND_US, 1, 1, 1, 1, MAX_D38, 10**37, 1, 1, 1)
    writer = ClickHouseWriter(client)
    for bad, column in [(ok._replace(volume=MAX_D38 + 1), "volume"),
                        (ok._replace(notional=10**38), "notional"),
                        (ok._replace(close=MAX_D18 + 1), "close")]:
        with pytest.raises(RowRangeError, match=rf"candles_1s\.{column} = "):
            writer.add_records([bad])
    assert writer.pending == 0
    writer.add_records([ok])
    writer.flush()
    (row,) = _read(client, "candles_1s", [sym])
    assert (row[6], row[7]) == (_d(MAX_D38), _d(10**37, 16))
