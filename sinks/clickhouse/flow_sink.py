"""The Bytewax sink of the ClickHouse tables: market records, or the trading flow's with its mapper.

Same contract as `sinks.partition` (read that docstring): one partition, flushed at every
epoch's `snapshot()`, so a recovery snapshot never covers rows that only lived in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bytewax.outputs import FixedPartitionedSink

from sinks.clickhouse.arrow import records_tables
from sinks.clickhouse.rows import TABLE_COLUMNS, RowRangeError, to_row
from sinks.clickhouse.trading_rows import to_row as trading_to_row
from sinks.clickhouse.writer import ArrowWriter, ClickHouseWriteError, ClickHouseWriter
from sinks.partition import WriterPartition
from tapeflow.core.trading.shard_step import PnlSnapshot


def clickhouse_trading_mapper(version_base: int = 0) -> Callable[[Any], tuple[str, Any]]:
    """`sinks.clickhouse.trading_rows.to_row` with `version_base` added to the versions of
    `pnl_snapshots` rows (see `restart_version_base`)."""
    def to_row(record: Any) -> tuple[str, Any]:
        if version_base and isinstance(record, PnlSnapshot):
            record = record._replace(version=record.version + version_base)
        return trading_to_row(record)
    return to_row



class ClickHouseSink(FixedPartitionedSink[Any, None]):
    """Records into their ClickHouse tables: by default the market's (Trade, Quote, Rejection,
    Candle); the trading flow passes its own `mapper` and `columns`
    (`sinks.clickhouse.trading_rows`).

    `client_factory` opens a clickhouse-connect client
    (`tapeflow.services.clickhouse.open_clickhouse`); it is called when the partition is built, on
    the worker that writes. One partition: the embedded chDB allows one writer process anyway, and a
    server takes batches from one writer per flow process easily (docs/stores.md: 100-200k rows/s).
    `deadline_s`: how long a failing insert is retried (`sinks.batching.BatchPolicy`; None: the
    writer's attempts).
    """

    def __init__(self, client_factory: Callable[[], Any], *, max_rows: int = 20_000,
                 max_age_s: float = 1.0, deadline_s: float | None = None,
                 mapper: Callable[[Any], tuple[str, Any]] = to_row,
                 columns: Mapping[str, Sequence[str]] = TABLE_COLUMNS) -> None:
        self._client_factory = client_factory
        self._max_rows = max_rows
        self._max_age_s = max_age_s
        self._deadline_s = deadline_s
        self._mapper = mapper
        self._columns = columns

    def list_parts(self) -> list[str]:
        return ["clickhouse"]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> WriterPartition:
        writer = ClickHouseWriter(self._client_factory(), max_rows=self._max_rows,
                                  max_age_s=self._max_age_s, deadline_s=self._deadline_s,
                                  columns=self._columns)
        mapper = self._mapper
        return WriterPartition(writer, lambda record: (mapper(record),), store="ClickHouse",
                               unmappable=(RowRangeError, TypeError, ValueError),
                               write_error=ClickHouseWriteError)


class ClickHouseArrowSink(FixedPartitionedSink[Any, None]):
    """Lists of market records (Trade, Quote, Rejection, Candle; one list per batch of the
    market flow) into their ClickHouse tables as Arrow tables (`sinks.clickhouse.arrow`:
    decimal128 columns built from the integer units, no `Decimal` per value), buffered by an
    `ArrowWriter` and flushed at every epoch's `snapshot()`, like `ClickHouseSink`. A record
    that fits no row is logged and skipped (`records_tables`)."""

    def __init__(self, client_factory: Callable[[], Any], *, max_rows: int = 20_000,
                 max_age_s: float = 1.0, deadline_s: float | None = None) -> None:
        self._client_factory = client_factory
        self._max_rows = max_rows
        self._max_age_s = max_age_s
        self._deadline_s = deadline_s

    def list_parts(self) -> list[str]:
        return ["clickhouse"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> WriterPartition:
        writer = ArrowWriter(self._client_factory(), max_rows=self._max_rows,
                             max_age_s=self._max_age_s, deadline_s=self._deadline_s)
        return _ArrowPartition(writer, lambda records: records_tables(records)[0],
                               store="ClickHouse",
                               unmappable=(RowRangeError, TypeError, ValueError),
                               write_error=ClickHouseWriteError)


class _ArrowPartition(WriterPartition):
    """The lists of one `write_batch` call become one Arrow table per ClickHouse table (an
    Arrow table per list would cost its fixed overhead per batch of the flow)."""

    def write_batch(self, values: list[Any]) -> None:
        super().write_batch([[record for batch in values for record in batch]])
