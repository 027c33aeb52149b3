"""The trading flow's ClickHouse writer: records in, one Arrow insert per table per flush.

An `ArrowRecordWriter` (`sinks.clickhouse.record_writer`: a `ClickHouseWriter` that buffers
core records instead of rows and builds each table's batch column-wise at the flush, with
`sinks.clickhouse.trading_arrow`; shared with the market writer) that keeps:

- `executions`, the audit trail: every record handed over (the flow leaves out redelivered
  reports, whose first verdict is already stored); `cash_movements` likewise;
- `pnl_snapshots`: the latest version per key (account_id, symbol, ts) only, the one
  ReplacingMergeTree(version) keeps (ties: the last added, as the engine keeps the last
  inserted), so a snapshot re-emitted many times between two flushes is written once;
- `alerts`: every alert (ids are deterministic; a repeat collapses on its key).

So the tables read (FINAL) exactly as if every record had been inserted row by row
(tests/integration/test_trading_writes.py). A record whose values do not fit their columns is
left out at the flush (`ArrowRecordWriter.arrow_table`, with the row mapper
`trading_rows.to_row`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from sinks.clickhouse.record_writer import ArrowRecordWriter
from sinks.clickhouse.trading_arrow import alerts_table, cash_table, executions_table, pnl_table
from sinks.clickhouse.trading_rows import TABLE_COLUMNS
from sinks.clickhouse.trading_rows import to_row as row_of
from tapeflow.core.models import RiskAlert
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, PnlSnapshot

TABLE_ORDER = ("executions", "cash_movements", "pnl_snapshots", "alerts")

TradingRecord = ExecutionResult | CashResult | PnlSnapshot | RiskAlert


class TradingClickHouseWriter(ArrowRecordWriter):
    """Buffers `ExecutionResult`, `CashResult`, `PnlSnapshot` and `RiskAlert` records
    (`add_record`, `buffer_record`) and inserts them as Arrow tables. `version_base` is added
    to pnl_snapshots versions (`sinks.versions.restart_version_base`)."""

    def __init__(self, client: Any, *, version_base: int = 0, **kwargs: Any) -> None:
        super().__init__(client, columns=TABLE_COLUMNS, **kwargs)
        self.version_base = version_base
        self._executions: list[ExecutionResult] = []
        self._cash: list[CashResult] = []
        self._pnl: dict[tuple[str, str, int], PnlSnapshot] = {}
        self._alerts: list[RiskAlert] = []

    @property
    def pending(self) -> int:
        return len(self._executions) + len(self._cash) + len(self._pnl) + len(self._alerts)

    def add_record(self, record: TradingRecord, now: float | None = None) -> int:
        """Buffer one record; flush when a bound is reached. Returns the rows written."""
        self.buffer_record(record, now)
        return self.flush_if_due(now)

    def buffer_record(self, record: TradingRecord, now: float | None = None) -> None:
        """Buffer one record without flushing, whatever the bounds."""
        if isinstance(record, ExecutionResult):
            self._executions.append(record)
        elif isinstance(record, CashResult):
            self._cash.append(record)
        elif isinstance(record, PnlSnapshot):
            key = (record.account_id, record.symbol, record.ts)
            held = self._pnl.get(key)
            if held is None or record.version >= held.version:
                self._pnl[key] = record
        elif isinstance(record, RiskAlert):
            self._alerts.append(record)
        else:
            raise TypeError(f"no ClickHouse trading table for {type(record).__name__} records")
        self._started(now)

    def discard(self) -> None:
        """Drop every buffered record unwritten (a sink re-adds the ones it still wants)."""
        for table in TABLE_ORDER:
            self._clear(table)
        super().discard()

    def _records(self, table: str) -> Sequence[Any]:
        if table == "executions":
            return self._executions
        if table == "cash_movements":
            return self._cash
        if table == "pnl_snapshots":
            return list(self._pnl.values())
        return self._alerts

    def _clear(self, table: str) -> None:
        if table == "executions":
            self._executions = []
        elif table == "cash_movements":
            self._cash = []
        elif table == "pnl_snapshots":
            self._pnl = {}
        else:
            self._alerts = []

    def _builder(self, table: str) -> Callable[[Sequence[Any]], pa.Table]:
        if table == "executions":
            return executions_table
        if table == "cash_movements":
            return cash_table
        if table == "pnl_snapshots":
            return lambda snaps: pnl_table(snaps, self.version_base)
        return alerts_table

    def _tables(self) -> Sequence[str]:
        return TABLE_ORDER

    def _row_of(self, record: Any) -> object:
        return row_of(record)
