"""A batching ClickHouse writer: rows in, one INSERT per table per flush, retried when transient.

Why batches: ClickHouse makes one part per INSERT, and many small parts cost merges (and end in
TOO_MANY_PARTS); one insert of thousands of rows costs about the same as one of ten. So rows are
buffered per table and written when `max_rows` are pending (size bound, which also bounds
memory) or when the oldest pending row is `max_age_s` old (time bound, so a quiet stream still
lands within a known delay). The caller checks the time bound with `flush_if_due` from wherever
it gets control (a Bytewax sink's `write_batch`, a backfill loop); `add` checks both bounds.
Time is the monotonic clock unless the caller passes `now`: this is the I/O edge, where wall
or monotonic time is fine, and passing `now` makes the bounds testable.

Why retries are safe: every table is a ReplacingMergeTree keyed so the same row written twice is
one row (schemas/clickhouse/0001_init.sql, docs/stores.md). An insert whose outcome is unknown
(a timeout after the server took it) can therefore simply be sent again, and so can everything a
recovering dataflow replays. Transient errors (network, timeouts, TOO_MANY_PARTS, memory
pressure, ...) are retried with exponential backoff and jitter (tenacity); after `attempts`
tries, or at once for an error that no retry can fix (unknown table, a bad value),
`ClickHouseWriteError` is raised and names the table, the row count and the cause.

On failure nothing is dropped: the tables already written leave the buffer, the failing table
and the ones after it stay, so a later `flush` (or the replay after a crash) writes them.
Per table, rows are inserted in the order they were added, so when two rows share a key the
last one added is the one a ReplacingMergeTree keeps.

One writer belongs to one thread (one Bytewax partition, one backfill); it takes any
clickhouse-connect client, embedded chDB or server.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from clickhouse_connect.driver import exceptions as ch_errors
from tenacity import RetryCallState

from sinks.batching import BatchPolicy, BatchWriter
from sinks.clickhouse.rows import TABLE_COLUMNS, Row, to_row
from tapeflow.errors import StoreError

log = logging.getLogger("tapeflow.sinks.clickhouse")

TRANSIENT_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY (a replica that lost its keeper session)
    252,  # TOO_MANY_PARTS (merges will catch up)
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT (safe to resend: keys collapse a duplicate)
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
})
"""ClickHouse error codes worth another attempt: the same insert may succeed a moment later."""


ROW_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407,  # DECIMAL_OVERFLOW
    469,  # VIOLATED_CONSTRAINT
})
"""ClickHouse error codes that refuse the values of some row, not the insert as such: the sinks
isolate the row and dead-letter it (sinks/partition.py)."""


class ClickHouseWriteError(StoreError, RuntimeError):
    """A batch could not be written. The rows are still buffered in the writer.

    `refused_value`: the store refused some row's values (a constraint, a value the column or
    the driver cannot take), so the batch without that row would go in."""

    def __init__(self, message: str, *, table: str, rows: int, attempts: int,
                 transient: bool, refused_value: bool = False) -> None:
        super().__init__(message)
        self.table = table
        self.rows = rows
        self.attempts = attempts
        self.transient = transient
        self.refused_value = refused_value


def refuses_value(exc: BaseException | None) -> bool:
    """Whether an insert failed on the values of some row: a server code of `ROW_CODES`, or the
    driver unable to serialise a value (it raises before sending anything)."""
    code = getattr(exc, "code", None)
    if isinstance(exc, ch_errors.DatabaseError) and code is not None:
        return code in ROW_CODES
    return isinstance(exc, ch_errors.DataError | ValueError | TypeError | OverflowError
                      | struct.error)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same insert can help: a known transient server code, or a transport
    failure without a code (connection refused or reset, a stream cut, a timeout)."""
    code = getattr(exc, "code", None)
    if isinstance(exc, ch_errors.Error) and code is not None:
        return code in TRANSIENT_CODES
    return isinstance(exc, ch_errors.OperationalError | ConnectionError | TimeoutError)


class ClickHouseWriter(BatchWriter):
    """Buffers rows per table and inserts them in batches, with retries.

    `columns` maps each table to its column list, the order of every row added for it (the
    market tables by default, `sinks.clickhouse.rows.TABLE_COLUMNS`).
    """

    metrics_store = "clickhouse"

    def __init__(
        self,
        client: Any,
        *,
        max_rows: int = 20_000,
        max_age_s: float = 1.0,
        attempts: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        deadline_s: float | None = None,
        columns: Mapping[str, Sequence[str]] = TABLE_COLUMNS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(BatchPolicy(max_rows, max_age_s, attempts, backoff_s, max_backoff_s,
                                     deadline_s), clock=clock, sleep=sleep)
        self._client = client
        self._columns = {table: tuple(cols) for table, cols in columns.items()}
        self._buffers: dict[str, list[Row | Sequence[Any]]] = {}
        self._contexts: dict[str, Any] = {}
        self._pending = 0

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return self._pending

    def add(self, table: str, row: Row | Sequence[Any], now: float | None = None) -> int:
        """Buffer one row; flush when a bound is reached. Returns the rows written by this call."""
        self.buffer(table, row, now)
        return self.flush_if_due(now)

    def buffer(self, table: str, row: Row | Sequence[Any], now: float | None = None) -> None:
        """Buffer one row without flushing, whatever the bounds (a sink isolating a row)."""
        buffer = self._buffers.get(table)
        if buffer is None:
            buffer = self._new_buffer(table)
        buffer.append(row)
        self._pending += 1
        self._started(now)

    def discard(self) -> None:
        """Drop every buffered row unwritten (a sink re-adds the ones it still wants)."""
        self._buffers.clear()
        self._pending = 0
        self._flushed()

    def add_many(self, table: str, rows: Iterable[Row | Sequence[Any]],
                 now: float | None = None) -> int:
        """Buffer rows in order; a batch never exceeds `max_rows`, however many are given."""
        written = 0
        it = iter(rows)
        while True:
            room = max(self.max_rows - self._pending, 1)
            chunk = list(itertools.islice(it, room))
            if not chunk:
                return written + self.flush_if_due(now)
            buffer = self._buffers.get(table)
            if buffer is None:
                buffer = self._new_buffer(table)
            buffer.extend(chunk)
            self._pending += len(chunk)
            self._started(now)
            if self._pending >= self.max_rows:
                written += self.flush()

    def add_records(self, records: Iterable[Any], now: float | None = None) -> int:
        """Map core records (Trade, Quote, Rejection, Candle) to their tables and buffer them."""
        written = 0
        for record in records:
            table, row = to_row(record)
            written += self.add(table, row, now)
        return written

    def flush(self) -> int:
        """Insert every buffered table, one batch each, in the order tables were first added.
        Returns the rows written; raises `ClickHouseWriteError` with the unwritten rows kept."""
        written = 0
        for table in list(self._buffers):
            rows = self._buffers[table]
            if rows:
                self._insert_with_retries(table, rows)
                written += len(rows)
                self._pending -= len(rows)
            del self._buffers[table]
        self._flushed()
        return written

    def _new_buffer(self, table: str) -> list[Row | Sequence[Any]]:
        if table not in self._columns:
            known = ", ".join(sorted(self._columns))
            raise KeyError(f"no column list for table {table!r}; known tables: {known}")
        buffer: list[Row | Sequence[Any]] = []
        self._buffers[table] = buffer
        return buffer

    def _insert_with_retries(self, table: str, rows: list[Row | Sequence[Any]]) -> None:
        started = time.perf_counter()
        failure = self._with_retries(is_transient, self._insert, table, rows)
        if failure is not None:
            outcome = (f"failed {failure.attempts} times on transient errors "
                       f"({self.retry_bound()}); last"
                       if failure.transient else
                       f"failed and is not retryable (attempt {failure.attempts})")
            raise ClickHouseWriteError(
                f"insert of {len(rows)} rows into {table} {outcome}: {_first_line(failure.error)}",
                table=table, rows=len(rows), attempts=failure.attempts,
                transient=failure.transient,
                refused_value=not failure.transient and refuses_value(failure.error),
            ) from failure.error
        self.rows_written += len(rows)
        self.batches_written += 1
        self._record_batch(table, len(rows), started)

    def _insert(self, table: str, rows: list[Row | Sequence[Any]]) -> None:
        """One INSERT with named columns, through a per-table insert context: the column types
        are fetched once per table, not on every batch."""
        context = self._contexts.get(table)
        if context is None:
            context = self._client.create_insert_context(table=table,
                                                         column_names=list(self._columns[table]))
            self._contexts[table] = context
        context.data = rows
        try:
            self._client.insert(context=context)
        finally:
            context.data = None

    def _log_retry(self, state: RetryCallState, exc: BaseException | None) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        table, rows = (*state.args, "?", ())[:2]
        log.warning("ClickHouse: insert of %d rows into %s failed (attempt %d, %s): %s; "
                    "next attempt in %.1f s", len(rows), table, state.attempt_number,
                    self.retry_bound(), _first_line(exc), wait)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__
