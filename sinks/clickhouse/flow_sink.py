"""The Bytewax sinks of the ClickHouse tables: the market flow's batches of records
(`ClickHouseArrowSink`, Arrow batches on the worker) and the trading flow's records
(`TradingClickHouseSink`, Arrow batches on a writer thread).

Same contract as `sinks.partition` (read that docstring): one partition, flushed at every
epoch's `snapshot()`, so a recovery snapshot never covers rows that only lived in memory; rows
ClickHouse refuses for good are isolated into dead letters when the sink has a dead-letter
output (`sinks.isolation`). One partition: the embedded chDB allows one writer process anyway,
and a server takes batches from one writer per flow process easily (docs/stores.md).
`client_factory` opens a clickhouse-connect client (`tapeflow.services.clickhouse.
open_clickhouse`); it is called when the partition is built, on the worker that writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytewax.outputs import FixedPartitionedSink

from sinks.clickhouse.arrow_columns import warm_up
from sinks.clickhouse.market_writer import MarketClickHouseWriter, market_mapper
from sinks.clickhouse.rows import RowRangeError
from sinks.clickhouse.trading_rows import to_row as trading_to_row
from sinks.clickhouse.trading_writer import TradingClickHouseWriter
from sinks.clickhouse.writer import ClickHouseWriteError
from sinks.dead_letters import DeadLetterOutput
from sinks.partition import BackgroundWriterPartition, WriterPartition
from tapeflow.core.trading.shard_step import PnlSnapshot


def clickhouse_trading_mapper(version_base: int = 0) -> Callable[[Any], tuple[str, Any]]:
    """`sinks.clickhouse.trading_rows.to_row` with `version_base` added to the versions of
    `pnl_snapshots` rows (see `restart_version_base`)."""
    def to_row(record: Any) -> tuple[str, Any]:
        if version_base and isinstance(record, PnlSnapshot):
            record = record._replace(version=record.version + version_base)
        return trading_to_row(record)
    return to_row


UNMAPPABLE = (RowRangeError, TypeError, ValueError)
"""What mapping a record raises when it has no row (a value out of its column's range)."""


class _ArrowSink(FixedPartitionedSink[Any, None]):
    """What both Arrow sinks take: `client_factory`, the writer's bounds (`max_rows`,
    `max_age_s`) and retry deadline, the `version_base` of the rows it versions, and
    `dead_letters`, which builds where records ClickHouse refuses go
    (`sinks.dead_letters.store_dead_letters`)."""

    def __init__(self, client_factory: Callable[[], Any], *, max_rows: int = 20_000,
                 max_age_s: float = 1.0, deadline_s: float | None = None,
                 version_base: int = 0,
                 dead_letters: Callable[[], DeadLetterOutput] | None = None) -> None:
        warm_up()  # before the dataflow starts, not at its first flush
        self._client_factory = client_factory
        self._max_rows = max_rows
        self._max_age_s = max_age_s
        self._deadline_s = deadline_s
        self._version_base = version_base
        self._dead_letters = dead_letters

    def list_parts(self) -> list[str]:
        return ["clickhouse"]

    def _letters(self) -> DeadLetterOutput | None:
        return self._dead_letters() if self._dead_letters else None


class TradingClickHouseSink(_ArrowSink):
    """The trading flow's records (`ExecutionResult`, `CashResult`, `PnlSnapshot`,
    `RiskAlert`) into executions, cash_movements, pnl_snapshots and alerts as Arrow batches
    (`TradingClickHouseWriter`: the latest snapshot per key, every execution, movement and
    alert), written on a thread of its own (`sinks.partition.BackgroundWriterPartition`) so the
    flow's worker never waits for an insert. `version_base` is added to pnl_snapshots versions
    (`restart_version_base`); `dead_letters` builds where records ClickHouse refuses go
    (`sinks.dead_letters.store_dead_letters`), each with its rows as the row mapper makes them
    (`clickhouse_trading_mapper`)."""

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> BackgroundWriterPartition:
        writer = TradingClickHouseWriter(self._client_factory(), max_rows=self._max_rows,
                                         max_age_s=self._max_age_s, deadline_s=self._deadline_s,
                                         version_base=self._version_base)
        mapper = clickhouse_trading_mapper(self._version_base)
        return BackgroundWriterPartition(
            writer, writer.buffer_record, lambda record: (mapper(record),), store="ClickHouse",
            unmappable=UNMAPPABLE, write_error=ClickHouseWriteError,
            dead_letters=self._letters())


class ClickHouseArrowSink(_ArrowSink):
    """Lists of market records (Trade, Quote, Rejection, Candle; one list per batch of the
    market flow) into their ClickHouse tables as Arrow batches (`MarketClickHouseWriter`:
    decimal128 columns built from the integer units, no `Decimal` per value), on the worker,
    flushed at every epoch's `snapshot()`, the writer's bounds checked once per list.
    `version_base` is added to candle versions
    (`sinks.versions.candle_version_base`); `dead_letters` builds where records ClickHouse
    refuses go (`sinks.dead_letters.store_dead_letters`), each with its rows as the row mapper
    makes them (`market_mapper`), and a record with no row is an `unstorable_value` letter."""

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> WriterPartition:
        writer = MarketClickHouseWriter(self._client_factory(), max_rows=self._max_rows,
                                        max_age_s=self._max_age_s, deadline_s=self._deadline_s,
                                        version_base=self._version_base)
        mapper = market_mapper(self._version_base)
        return WriterPartition(
            writer, lambda record: (mapper(record),), store="ClickHouse",
            unmappable=UNMAPPABLE, write_error=ClickHouseWriteError,
            dead_letters=self._letters(),
            buffer=writer.buffer_record, batched=True)
