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
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
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


class BackgroundWriterPartition(StatefulSinkPartition[Any, None]):
    """A batching writer on a thread of its own: the worker only hands records over.

    Why: a store write (a COPY, an insert of thousands of rows, a retry during an outage)
    must not hold the Bytewax worker, because everything behind it waits, the risk alerts of
    the trading flow included (issue 12: an alert goes to risk.alerts as soon as the step that
    raised it returns, not after the writes of its batch). So `write_batch` queues the records
    and returns; the thread buffers them in the writer (`consume(record)`, which maps or
    coalesces them and flushes when the writer's bounds say so) and also flushes on the age
    bound while the flow is quiet.

    The checkpoint contract of `WriterPartition` is unchanged: `snapshot()` waits until the
    thread has written everything handed over before it, so a recovery snapshot never covers
    output that only lived in memory. Records are consumed and written in the order they were
    handed over, one batch at a time, so the stores see the same sequence of writes.

    Errors, as in `WriterPartition`: an unmappable record (`unmappable` from `consume`) is
    logged and skipped; a transient write error after the writer's retries stops the flow at
    the worker's next call (the thread stops consuming); a permanent one is logged with the
    rows kept, and the checkpoint's flush raises if it fails too. While the thread retries,
    the queue fills up to `max_queued` batches and `write_batch` then waits, so a store
    outage blocks the flow (bounded memory) as before and nothing is snapshotted past it.
    """

    def __init__(self, writer: RowWriter, consume: Callable[[Any], object], *, store: str,
                 unmappable: tuple[type[Exception], ...], write_error: type[Exception],
                 idle_s: float = 0.05, max_queued: int = 64) -> None:
        self._writer = writer
        self._consume = consume
        self._store = store
        self._unmappable = unmappable
        self._write_error = write_error
        self._idle_s = idle_s
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max_queued)
        self._failure: Exception | None = None
        self._holding = False
        self._stopped = False
        self.skipped = 0
        self._thread = threading.Thread(target=self._run, name=f"tapeflow-{store}-writer",
                                        daemon=True)
        self._thread.start()

    # The worker's side.

    def write_batch(self, values: list[Any]) -> None:
        if self._failure is not None:
            self._stops(self._failure)
        if values:
            self._queue.put(("records", values))

    def snapshot(self) -> None:
        error = self._ask("checkpoint")
        if error is not None:
            self._stops(error)

    def close(self) -> None:
        if self._stopped:
            self._queue.put(("abandon", None))  # see WriterPartition.close
            return
        error = self._ask("close")
        if error is not None:
            self._stops(error)

    def _ask(self, kind: str) -> Exception | None:
        done: Future[Exception | None] = Future()
        self._queue.put((kind, done))
        return done.result()

    def _stops(self, exc: Exception) -> None:
        self._stopped = True
        log.error("%s write failed, the flow stops (a restart with recovery replays): %s",
                  self._store, exc)
        raise exc

    # The writer thread's side.

    def _run(self) -> None:
        while True:
            try:
                kind, payload = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                kind, payload = "idle", None
            try:
                if self._step(kind, payload):
                    return
            except Exception as exc:  # a bug, not a store error: stop the flow, say why
                log.exception("%s writer thread failed", self._store)
                self._failure = exc
                if isinstance(payload, Future) and not payload.done():
                    payload.set_result(exc)
                if kind == "close":
                    return

    def _step(self, kind: str, payload: Any) -> bool:
        """Handle one job; returns whether the thread ends."""
        if kind == "idle":
            if self._failure is None and not self._holding:
                self._guarded(self._writer.flush_if_due)
        elif kind == "records":
            if self._failure is None:
                self._records(payload)
        elif kind == "checkpoint":
            self._holding = False
            payload.set_result(self._failure or self._flush(self._writer.flush))
        elif kind == "close":
            payload.set_result(self._failure or self._flush(self._writer.close))
            return True
        else:  # abandon: the flow stops; write nothing more
            return True
        return False

    def _records(self, records: list[Any]) -> None:
        for record in records:
            try:
                self._consume(record)
            except self._unmappable as exc:
                self.skipped += 1
                log.error("not stored in %s: %s", self._store, exc)
            except self._write_error as exc:
                if self._failed(exc):
                    return
        self._guarded(self._writer.flush_if_due)

    def _guarded(self, flush: Callable[[], object]) -> None:
        try:
            flush()
        except self._write_error as exc:
            self._failed(exc)

    def _flush(self, flush: Callable[[], object]) -> Exception | None:
        try:
            flush()
        except self._write_error as exc:
            return exc
        return None

    def _failed(self, exc: Exception) -> bool:
        """A write failed after the writer's retries. Transient (the deadline passed): stop
        consuming, the worker raises at its next call; else log it and keep the rows for the
        checkpoint's flush. Returns whether the flow stops."""
        if getattr(exc, "transient", False):
            self._failure = exc
            return True
        self._holding = True  # no retries on the idle clock: the checkpoint tries again
        log.error("%s write failed, rows kept for the next flush: %s", self._store, exc)
        return False
