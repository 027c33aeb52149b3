"""What every Bytewax sink of Tapeflow shares: one batching writer behind a partition, flushed at
every checkpoint.

Both are `FixedPartitionedSink`s because their partitions get a `snapshot()` call at the end of
every epoch (checked with bytewax 0.21.1: also without recovery configured). That is where they
flush: rows buffered during an epoch are written before the epoch's snapshot is taken, so a
snapshot never covers output that only lived in memory (a crash replays everything after the
last snapshot, and the tables and topics are idempotent or deduplicated by their readers).
Between checkpoints the writers' own bounds apply (ClickHouse: `max_rows` / `max_age_s`;
Kafka: librdkafka's `linger.ms` batching), so a busy stream is not cut into tiny inserts.

Two partitions over the same synchronous core (`sinks.isolation.IsolatingWriter`, which does
everything below): `WriterPartition` writes on the Bytewax worker; `BackgroundWriterPartition`
on a thread of its own, the worker only handing records over (the trading flow's stores).

Errors, by what can fix them:
- A write failing on a transient error (a store or broker down) blocks the writes while the
  writer retries, up to the writers' `deadline_s` (setting `sink_retry_deadline_s`;
  docs/faults.md): nothing is snapshotted meanwhile, so the flow never advances past output it
  has not written, and a short outage only delays it. Past the deadline it is logged and
  raised: the flow stops, and a restart with recovery replays from the last snapshot.
- A store refusing the values of some row for good (`refused_value` on the writer's error: a
  NUL Postgres will not hold, a CHECK constraint, a value the driver cannot serialise) is the
  row's fault, not the batch's. The partition isolates it: it drops the buffered rows and
  writes the records of the batch again in halves, splitting each half that is refused, until
  the refused records stand alone; those become dead letters with the store's reason
  (`sinks.dead_letters`), the others are written, and the flow goes on. A batch of n records
  with k refused takes about 2k log2(n) writes, once. Before, the refused row stopped the flow
  at the checkpoint, and the replay brought it back after every restart.
- Any other error no retry can fix (a missing table) is logged with the rows kept, and raised
  at the checkpoint if the checkpoint's flush fails too: the flow stops rather than snapshot
  offsets for output that was not written.
- A record that cannot be mapped to rows (a value out of its column's range) is a dead letter
  `unstorable_value` (logged and skipped when the sink has no dead-letter output).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, Protocol, cast

from bytewax.outputs import StatefulSinkPartition

from sinks.dead_letters import DeadLetterOutput
from sinks.isolation import IsolatingWriter, RowWriter

log = logging.getLogger("tapeflow.sinks.bytewax")

__all__ = ["BackgroundWriterPartition", "RowWriter", "TableWriter", "WriterPartition"]


class TableWriter(RowWriter, Protocol):
    """A writer of (table, row) pairs (`ClickHouseWriter`, `PostgresWriter`)."""

    def buffer(self, table: str, row: Any) -> None: ...


class WriterPartition(StatefulSinkPartition[Any, None]):
    """One batching writer behind a Bytewax sink: map each record to (table, row) pairs,
    buffer them, flush when the writer's bounds say so and at every snapshot.

    `unmappable` are the errors of `to_rows` that mean "this record has no row";
    `write_error` is the writer's error after its retries (module docstring for what each
    kind does); `dead_letters` is where refused records go (None: refusals stop the flow
    like any permanent error, and unmappable records are logged and skipped).

    `buffer`: how a record goes into the writer, for a writer that takes records rather than
    rows (the market flow's Arrow writer; default: each of its rows, `writer.buffer(table,
    row)`); `to_rows` still gives a refused record's rows for its dead letter. `batched`: each
    item's value is a list of records (one batch of the market flow), the writer's bounds
    checked once per list (`IsolatingWriter.write_all`).
    """

    def __init__(self, writer: RowWriter, to_rows: Callable[[Any], Iterable[tuple[str, Any]]],
                 *, store: str, unmappable: tuple[type[Exception], ...],
                 write_error: type[Exception],
                 dead_letters: DeadLetterOutput | None = None,
                 buffer: Callable[[Any], object] | None = None, batched: bool = False) -> None:
        if buffer is None:
            rows_writer = cast("TableWriter", writer)

            def buffer(record: Any) -> None:
                rows = list(to_rows(record))  # all or none of a record's rows
                for table, row in rows:
                    rows_writer.buffer(table, row)

        self._batched = batched
        self._writes = IsolatingWriter(writer, buffer, to_rows, store=store,
                                       unmappable=unmappable, write_error=write_error,
                                       dead_letters=dead_letters)

    @property
    def skipped(self) -> int:
        return self._writes.skipped

    @property
    def refused(self) -> int:
        return self._writes.refused

    def write_batch(self, values: list[Any]) -> None:
        if self._batched:
            for records in values:
                self._writes.write_all(records)
        else:
            self._writes.write(values)

    def snapshot(self) -> None:
        self._writes.flush()

    def close(self) -> None:
        if self._writes.stopped:
            # Bytewax closes the partitions while unwinding from the error: a second raise
            # there is a panic in a destructor, which hangs the process instead of ending it.
            return
        self._writes.close()


class BackgroundWriterPartition(StatefulSinkPartition[Any, None]):
    """A batching writer on a thread of its own: the worker only hands records over.

    Why: a store write (a COPY, an insert of thousands of rows, a retry during an outage)
    must not hold the Bytewax worker, because everything behind it waits, the risk alerts of
    the trading flow included (issue 12: an alert goes to risk.alerts as soon as the step that
    raised it returns, not after the writes of its batch). So `write_batch` queues the records
    and returns; the thread buffers them in the writer (`buffer(record)`, which maps or
    coalesces them without flushing), flushes when the writer's bounds say so, and also on the
    age bound while the flow is quiet.

    The checkpoint contract of `WriterPartition` is unchanged: `snapshot()` waits until the
    thread has written everything handed over before it (refused records isolated, their dead
    letters durable), so a recovery snapshot never covers output that only lived in memory.
    Records are buffered and written in the order they were handed over, one batch at a time.

    Errors are `WriterPartition`'s (the same `IsolatingWriter` on the thread; `rows(record)`
    gives a refused record's rows for its dead letter); what stops the flow is raised at the
    worker's next call (the thread stops consuming). While the thread retries, the queue fills
    up to `max_queued` batches and `write_batch` then waits, so a store outage blocks the flow
    (bounded memory) as before and nothing is snapshotted past it.
    """

    def __init__(self, writer: RowWriter, buffer: Callable[[Any], object],
                 rows: Callable[[Any], Iterable[tuple[str, Any]]], *, store: str,
                 unmappable: tuple[type[Exception], ...], write_error: type[Exception],
                 dead_letters: DeadLetterOutput | None = None, idle_s: float = 0.05,
                 max_queued: int = 64) -> None:
        self._writes = IsolatingWriter(writer, buffer, rows, store=store,
                                       unmappable=unmappable, write_error=write_error,
                                       dead_letters=dead_letters)
        self._store = store
        self._idle_s = idle_s
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max_queued)
        self._failure: Exception | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"tapeflow-{store}-writer",
                                        daemon=True)
        self._thread.start()

    @property
    def skipped(self) -> int:
        return self._writes.skipped

    @property
    def refused(self) -> int:
        return self._writes.refused

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
        """Raise what stopped the writes (logged on the thread when it happened)."""
        self._stopped = True
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
            except Exception as exc:
                if not self._writes.stopped:  # a bug, not a store error: say where
                    log.exception("%s writer thread failed, the flow stops", self._store)
                self._failure = exc
                if isinstance(payload, Future) and not payload.done():
                    payload.set_result(exc)
                if kind == "close":
                    return

    def _step(self, kind: str, payload: Any) -> bool:
        """Handle one job; returns whether the thread ends."""
        writes = self._writes
        if kind == "idle":
            if self._failure is None and not writes.failing:  # those wait for the checkpoint
                writes.flush_if_due()
        elif kind == "records":
            if self._failure is None:
                writes.write(payload)
        elif kind == "checkpoint":
            if self._failure is None:
                writes.flush()
            payload.set_result(self._failure)
        elif kind == "close":
            if self._failure is None:
                writes.close()
            payload.set_result(self._failure)
            return True
        else:  # abandon: the flow stops; write nothing more
            return True
        return False
