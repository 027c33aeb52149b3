"""The pure core-record -> ClickHouse row mappers: exact values, NULLs, ranges, table choice."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest

from sinks.clickhouse.rows import (
    CANDLE_COLUMNS,
    CANDLE_TABLES,
    MAX_D18,
    MAX_D38,
    QUOTE_COLUMNS,
    REJECTION_COLUMNS,
    TABLE_COLUMNS,
    TRADE_COLUMNS,
    RowRangeError,
    UnsupportedWidthError,
    candle_row,
    candle_table,
    quote_row,
    rejection_row,
    to_row,
    trade_row,
)
from tapeflow.core.fixedpoint import MAX_UNITS, to_decimal
from tapeflow.core.market.candles import MINUTE_US, SECOND_US, Candle
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US, DeadLetter, Quote, Trade

T0 = 1_767_623_400_123_456  # 2026-01-05T14:30:00.123456Z
TRADE = Trade("AAPL", "XNAS", T0, 7, 18_912_000_000, 10_000_000_000, "t-1", ("@", "F"))
QUOTE = Quote("AAPL", "XNAS", T0, 8, 18_911_000_000, 300_000_000, 18_913_000_000, 1)


def _candle(**fields: int) -> Candle:
    base = dict(bucket=T0 - T0 % MINUTE_US, width_us=MINUTE_US, open=100, high=300, low=50,
                close=200, volume=10**8, notional=150 * 10**16, vwap=150, trade_count=3,
                version=1)
    base.update(fields)
    return Candle("AAPL", **base)  # type: ignore[arg-type]


def test_trade_row_is_exact_in_column_order() -> None:
    row = trade_row(TRADE)
    assert len(row) == len(TRADE_COLUMNS)
    assert dict(zip(TRADE_COLUMNS, row, strict=True)) == {
        "symbol": "AAPL", "venue": "XNAS", "ts_event": T0, "seq": 7,
        "price": Decimal("189.12"), "size": Decimal("100"), "trade_id": "t-1",
        "conditions": ["@", "F"],
    }
    assert type(row[2]) is int  # written as raw DateTime64(6) ticks, never a datetime


def test_quote_row_is_exact_in_column_order() -> None:
    row = quote_row(QUOTE)
    assert dict(zip(QUOTE_COLUMNS, row, strict=True)) == {
        "symbol": "AAPL", "venue": "XNAS", "ts_event": T0, "seq": 8,
        "bid_px": Decimal("189.11"), "bid_sz": Decimal("3"), "ask_px": Decimal("189.13"),
        "ask_sz": Decimal("0.00000001"),
    }


def test_rejected_trade_keeps_the_trade_and_nulls_the_quote_fields() -> None:
    rej = Rejection(TickKind.TRADE, RejectReason.DUPLICATE_SEQ, TRADE._replace(price=0), "seq 7")
    row = dict(zip(REJECTION_COLUMNS, rejection_row(rej), strict=True))
    assert row == {
        "kind": "trade", "reason": "duplicate_seq", "symbol": "AAPL", "venue": "XNAS",
        "ts_event": T0, "seq": 7, "price": Decimal(0), "size": Decimal(100),
        "trade_id": "t-1", "conditions": ["@", "F"],
        "bid_px": None, "bid_sz": None, "ask_px": None, "ask_sz": None, "detail": "seq 7",
    }
    assert row["price"] is not None  # a zero price is a value, not a missing one
    assert type(row["kind"]) is str and type(row["reason"]) is str


def test_rejected_quote_keeps_the_quote_and_nulls_the_trade_fields() -> None:
    rej = Rejection(TickKind.QUOTE, RejectReason.CROSSED_QUOTE, QUOTE, "bid > ask")
    row = dict(zip(REJECTION_COLUMNS, rejection_row(rej), strict=True))
    assert (row["price"], row["size"], row["trade_id"], row["conditions"]) == (None, None, None, [])
    assert (row["bid_px"], row["ask_sz"]) == (Decimal("189.11"), Decimal("0.00000001"))
    assert (row["kind"], row["reason"], row["detail"]) == ("quote", "crossed_quote", "bid > ask")


def test_candle_row_scales_volume_8_and_notional_16() -> None:
    big_notional = 10**37 + 1  # 38 digits at scale 16: more than the default 28-digit context
    candle = _candle(volume=MAX_D38, notional=big_notional, version=2)
    row = dict(zip(CANDLE_COLUMNS, candle_row(candle), strict=True))
    assert row["volume"] == Decimal("999999999999999999999999999999.99999999")
    assert row["notional"] == Decimal("1000000000000000000000.0000000000000001")
    assert row["bucket"] == T0 - T0 % MINUTE_US
    assert (row["open"], row["vwap"], row["trade_count"], row["version"]) == (
        Decimal("0.000001"), Decimal("0.0000015"), 3, 2)


def test_to_decimal_is_exact_whatever_the_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 5
        assert to_decimal(10**37 + 1, 16) == Decimal("1000000000000000000000.0000000000000001")
        assert to_decimal(-MAX_UNITS) == Decimal("-9999999999.99999999")


def test_candle_table_by_width_and_a_clear_error_for_others() -> None:
    assert candle_table(SECOND_US) == "candles_1s"
    assert candle_table(MINUTE_US) == "candles_1m"
    assert candle_table(5 * MINUTE_US, {5 * MINUTE_US: "candles_5m"}) == "candles_5m"
    with pytest.raises(UnsupportedWidthError, match=r"5m candles .*candles_1s, 1m -> candles_1m"):
        candle_table(5 * MINUTE_US)
    with pytest.raises(UnsupportedWidthError, match="1500us candles"):
        to_row(_candle(width_us=1500))


def test_to_row_dispatches_every_stored_record() -> None:
    rej = Rejection(TickKind.QUOTE, RejectReason.WIDE_SPREAD, QUOTE, "")
    assert to_row(TRADE) == ("trades", trade_row(TRADE))
    assert to_row(QUOTE) == ("quotes", quote_row(QUOTE))
    assert to_row(rej) == ("rejected_ticks", rejection_row(rej))
    assert to_row(_candle(width_us=SECOND_US)) == ("candles_1s",
                                                   candle_row(_candle(width_us=SECOND_US)))
    with pytest.raises(TypeError, match="dead-letter topic"):
        to_row(DeadLetter("md.trades", 0, 1, "bad_magic", "", b"\x07", T0))  # type: ignore[arg-type]


def test_every_table_has_a_column_list_matching_its_rows() -> None:
    assert set(TABLE_COLUMNS) == {"trades", "quotes", "rejected_ticks", *CANDLE_TABLES.values()}
    assert len(trade_row(TRADE)) == len(TABLE_COLUMNS["trades"])
    assert len(quote_row(QUOTE)) == len(TABLE_COLUMNS["quotes"])
    assert len(candle_row(_candle())) == len(TABLE_COLUMNS["candles_1m"])


@pytest.mark.parametrize("units", [MAX_D18, -MAX_D18])
def test_decimal_18_8_bounds_are_accepted(units: int) -> None:
    assert trade_row(TRADE._replace(price=units))[4] == to_decimal(units)


@pytest.mark.parametrize(("record", "match"), [
    (TRADE._replace(price=MAX_D18 + 1), r"trades\.price = .* Decimal\(18, 8\)"),
    (TRADE._replace(size=-MAX_D18 - 1), r"trades\.size"),
    (QUOTE._replace(ask_sz=10**19), r"quotes\.ask_sz"),
    (Rejection(TickKind.TRADE, RejectReason.NON_POSITIVE_PRICE,
               TRADE._replace(price=-(10**18)), ""), r"rejected_ticks\.price"),
    (_candle(volume=MAX_D38 + 1), r"candles_1m\.volume = .* Decimal\(38, 8\)"),
    (_candle(notional=-(10**38)), r"candles_1m\.notional = .* Decimal\(38, 16\)"),
    (_candle(vwap=10**18), r"candles_1m\.vwap"),
    (_candle(trade_count=-1), r"candles_1m\.trade_count = -1 does not fit UInt64"),
    (_candle(version=2**64), r"candles_1m\.version"),
    (TRADE._replace(seq=2**63), r"trades\.seq = .* Int64"),
    (TRADE._replace(ts_event=EVENT_TIME_MAX_US + 1), r"trades\.ts_event = .* DateTime64\(6\)"),
    (QUOTE._replace(ts_event=EVENT_TIME_MIN_US - 1), r"quotes\.ts_event"),
    (_candle(bucket=EVENT_TIME_MAX_US + 1), r"candles_1m\.bucket"),
])
def test_values_out_of_column_range_raise_clearly(record: object, match: str) -> None:
    with pytest.raises(RowRangeError, match=match):
        to_row(record)  # type: ignore[arg-type]


def test_timestamp_bounds_are_accepted() -> None:
    assert trade_row(TRADE._replace(ts_event=EVENT_TIME_MIN_US))[2] == EVENT_TIME_MIN_US
    assert trade_row(TRADE._replace(ts_event=EVENT_TIME_MAX_US))[2] == EVENT_TIME_MAX_US
    assert trade_row(TRADE._replace(ts_event=-1))[2] == -1
