"""The market flow's ClickHouse writer: records in, one Arrow insert per table per flush.

An `ArrowRecordWriter` (`sinks.clickhouse.record_writer`, shared with the trading writer: the
bounds, retries and errors of `ClickHouseWriter`, and records that do not fit left out at the
flush) for the market's records: clean trades and quotes, rejected ticks and candles, each
table's batch built column-wise from the core's integers (`sinks.clickhouse.arrow`, no
`Decimal` per value). Every record handed over is written, in order: a candle's successive
versions too (ReplacingMergeTree keeps the highest), and a record written twice collapses on
its key, so the tables read (FINAL) exactly as if every record had been inserted row by row
(tests/integration/test_clickhouse_sink.py).

Candle versions get the writer's base (`sinks.versions.candle_version_base`) so a later
writer's candles replace an earlier one's; `market_mapper` is the same mapping row by row
(the dead letters' rows, what `tapeflow dlq replay` writes back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from sinks.clickhouse.arrow import market_builder, table_of
from sinks.clickhouse.record_writer import ArrowRecordWriter
from sinks.clickhouse.rows import TABLE_COLUMNS, to_row
from tapeflow.core.market.candles import Candle


def market_mapper(version_base: int = 0) -> Callable[[Any], tuple[str, Any]]:
    """`sinks.clickhouse.rows.to_row` with `version_base` added to the versions of candles
    (`sinks.versions.candle_version_base`: a later writer's candles replace an earlier one's)."""
    def mapped(record: Any) -> tuple[str, Any]:
        if version_base and type(record) is Candle:
            record = record._replace(version=record.version + version_base)
        return to_row(record)
    return mapped


class MarketClickHouseWriter(ArrowRecordWriter):
    """Buffers Trade, Quote, Rejection and Candle records per table (tables inserted in the
    order of their first record, rows in record order) and inserts them as Arrow tables.
    `version_base` is added to candle versions."""

    def __init__(self, client: Any, *, version_base: int = 0, **kwargs: Any) -> None:
        super().__init__(client, columns=TABLE_COLUMNS, **kwargs)
        self.version_base = version_base
        self._row = market_mapper(version_base)

    def add_record(self, record: Any, now: float | None = None) -> int:
        """Buffer one record; flush when a bound is reached. Returns the rows written."""
        self.buffer_record(record, now)
        return self.flush_if_due(now)

    def buffer_record(self, record: Any, now: float | None = None) -> None:
        """Buffer one record without flushing, whatever the bounds. Raises `TypeError` or
        `UnsupportedWidthError` (a ValueError) for a record no table holds."""
        self.buffer(table_of(record), record, now)

    def _tables(self) -> Sequence[str]:
        return list(self._buffers)

    def _records(self, table: str) -> Sequence[Any]:
        return self._buffers.get(table, ())

    def _clear(self, table: str) -> None:
        self._pending -= len(self._buffers.pop(table, ()))

    def _builder(self, table: str) -> Callable[[Sequence[Any]], pa.Table]:
        return market_builder(table, self.version_base)

    def _row_of(self, record: Any) -> object:
        return self._row(record)
