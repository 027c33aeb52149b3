"""Core records buffered per ClickHouse table, inserted as one Arrow table per table per flush:
what the market's and the trading flow's ClickHouse writers share.

An `ArrowRecordWriter` is a `ClickHouseWriter` (same bounds, retries, errors and log lines:
read its docstring) that buffers core records instead of rows and builds each table's batch
column-wise at the flush (`sinks.clickhouse.arrow_columns`). A subclass says which records a
table holds (`_tables`, `_records`, `_clear`), how they become its Arrow table (`_builder`) and
how one record becomes its row (`_row_of`, the row mapper, the reference).

A record whose values do not fit their columns is left out at the flush: when a table's batch
does not build, its records are mapped one by one with the row mapper, which names the column
and the record, and each that does not map is handed to `on_unmapped` (logged; a sink partition
points it at its dead letters, `sinks.isolation`). The others are written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from sinks.clickhouse.rows import RowRangeError
from sinks.clickhouse.writer import ClickHouseWriter

log = logging.getLogger("tapeflow.sinks.clickhouse")

UNFIT = (RowRangeError, ValueError, TypeError, OverflowError)
"""What building an Arrow table or a row raises for a value that does not fit its column
(pyarrow's `ArrowInvalid` is a ValueError)."""


class ArrowRecordWriter(ClickHouseWriter):
    """Buffers core records per table and inserts each table's as one Arrow batch per flush
    (module docstring). `unmapped` counts the records left out."""

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.unmapped = 0
        """Records left out at a flush because a value does not fit its column."""
        self.on_unmapped: Callable[[Any, Exception], None] = _log_unmapped
        """Called with each record left out at a flush, and why."""

    # What a subclass provides.

    def _tables(self) -> Sequence[str]:
        """The tables that may hold buffered records, in the order they are inserted."""
        raise NotImplementedError

    def _records(self, table: str) -> Sequence[Any]:
        raise NotImplementedError

    def _clear(self, table: str) -> None:
        raise NotImplementedError

    def _builder(self, table: str) -> Callable[[Sequence[Any]], pa.Table]:
        raise NotImplementedError

    def _row_of(self, record: Any) -> object:
        """The record's row by the row mapper; raises one of `UNFIT` when it has none."""
        raise NotImplementedError

    # What they share.

    def arrow_tables(self) -> list[tuple[str, pa.Table]]:
        """The batches the next flush would insert, table by table in order: each table's
        buffered records as one Arrow table, the ones that do not fit left out (and handed to
        `on_unmapped`). Nothing is written or cleared."""
        return [(table, self._arrow(table, records)) for table in self._tables()
                if (records := self._records(table))]

    def _arrow(self, table: str, records: Sequence[Any]) -> pa.Table:
        build = self._builder(table)
        try:
            return build(records)
        except UNFIT:
            pass
        good = []
        for record in records:
            try:
                self._row_of(record)
            except UNFIT as exc:
                self.unmapped += 1
                self.on_unmapped(record, exc)
                continue
            good.append(record)
        return build(good) if good else pa.table({})  # nothing fits: nothing to insert

    def flush(self) -> int:
        """Insert every buffered table, one Arrow batch each. Returns the rows written; raises
        `ClickHouseWriteError` with the unwritten tables still buffered."""
        written = 0
        for table in list(self._tables()):
            records = self._records(table)
            if not records:
                continue
            data = self._arrow(table, records)
            if data.num_rows:
                self._insert_with_retries(table, data)
                written += data.num_rows
            self._clear(table)
        self._flushed()
        return written

    def _insert(self, table: str, rows: Any) -> None:
        """One Arrow insert (`rows` is the batch's `pyarrow.Table`)."""
        self._client.insert_arrow(table, rows)


def _log_unmapped(record: Any, exc: Exception) -> None:
    log.error("not stored in ClickHouse: %s", exc)
