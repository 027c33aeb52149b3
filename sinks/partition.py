"""What every Bytewax sink of Tapeflow shares: one batching writer behind a partition, flushed at
every checkpoint.

Both are `FixedPartitionedSink`s because their partitions get a `snapshot()` call at the end of
every epoch (checked with bytewax 0.21.1: also without recovery configured). That is where they
flush: rows buffered during an epoch are written before the epoch's snapshot is taken, so a
snapshot never covers output that only lived in memory (a crash replays everything after the
last snapshot, and the tables and topics are idempotent or deduplicated by their readers).
Between checkpoints the writers' own bounds apply (ClickHouse: `max_rows` / `max_age_s`;
Kafka: librdkafka's `linger.ms` batching), so a busy stream is not cut into tiny inserts.

Errors: a record that cannot be mapped (a value out of its column's range) is logged and
skipped, never raised (one exception kills the dataflow). A write failing on a transient error
(a store or broker down) blocks the worker while the writer retries, up to the writers'
`deadline_s` (setting `sink_retry_deadline_s`; docs/faults.md): nothing is read or snapshotted
meanwhile, so the flow never advances past output it has not written, and a short outage only
delays it. A write that still fails then is logged and raised at once; an error no retry can
fix (a missing table) is logged at `write_batch` (the rows stay buffered) and raised at the
checkpoint. Either way the flow stops rather than snapshot offsets for output that was not
written, and a restart with recovery replays from the last snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bytewax.outputs import StatefulSinkPartition

log = logging.getLogger("tapeflow.sinks.bytewax")


class RowWriter(Protocol):
    """What a sink partition needs of a batching writer (ClickHouse or Postgres)."""

    def add(self, table: str, row: Any) -> int: ...

    def flush_if_due(self) -> int: ...

    def flush(self) -> int: ...

    def close(self) -> None: ...


class WriterPartition(StatefulSinkPartition[Any, None]):
    """One batching writer behind a Bytewax sink: map each record to (table, row) pairs,
    buffer them, flush when the writer's bounds say so and at every snapshot.

    `unmappable` are the errors of `to_rows` that mean "this record has no row" (logged and
    skipped, counted in `skipped`); `write_error` is the writer's error after its retries
    (transient: logged and raised at once; otherwise logged in `write_batch` with the rows kept
    buffered, and raised at the checkpoint if the checkpoint's flush fails too).
    """

    def __init__(self, writer: RowWriter, to_rows: Callable[[Any], Iterable[tuple[str, Any]]],
                 *, store: str, unmappable: tuple[type[Exception], ...],
                 write_error: type[Exception]) -> None:
        self._writer = writer
        self._to_rows = to_rows
        self._store = store
        self._unmappable = unmappable
        self._write_error = write_error
        self._stopped = False
        self.skipped = 0

    def write_batch(self, values: list[Any]) -> None:
        writer = self._writer
        for record in values:
            try:
                rows = list(self._to_rows(record))
            except self._unmappable as exc:
                self.skipped += 1
                log.error("not stored in %s: %s", self._store, exc)
                continue
            try:
                for table, row in rows:
                    writer.add(table, row)
            except self._write_error as exc:
                self._failed(exc)
        try:
            writer.flush_if_due()
        except self._write_error as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """A write failed after the writer's retries: log it; raise it when the retries were
        for a transient error (the deadline passed: the flow stops now, the replay brings the
        rows again), else keep the rows for the checkpoint's flush, which raises."""
        if getattr(exc, "transient", False):
            self._stops(exc)
        log.error("%s write failed, rows kept for the next flush: %s", self._store, exc)

    def snapshot(self) -> None:
        try:
            self._writer.flush()
        except self._write_error as exc:
            self._stops(exc)

    def close(self) -> None:
        if self._stopped:
            # Bytewax closes the partitions while unwinding from the error: a second raise
            # there is a panic in a destructor, which hangs the process instead of ending it.
            return
        try:
            self._writer.close()
        except self._write_error as exc:
            self._stops(exc)

    def _stops(self, exc: Exception) -> None:
        """The rows cannot be written: say so in one line (Bytewax reports only a panic),
        then raise, so no snapshot covers the unwritten rows."""
        self._stopped = True
        log.error("%s write failed, the flow stops (a restart with recovery replays): %s",
                  self._store, exc)
        raise exc
