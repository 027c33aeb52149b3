"""What every Bytewax sink of Tapeflow shares: one batching writer behind a partition, flushed at
every checkpoint.

Both are `FixedPartitionedSink`s because their partitions get a `snapshot()` call at the end of
every epoch (checked with bytewax 0.21.1: also without recovery configured). That is where they
flush: rows buffered during an epoch are written before the epoch's snapshot is taken, so a
snapshot never covers output that only lived in memory (a crash replays everything after the
last snapshot, and the tables and topics are idempotent or deduplicated by their readers).
Between checkpoints the writers' own bounds apply (ClickHouse: `max_rows` / `max_age_s`;
Kafka: librdkafka's `linger.ms` batching), so a busy stream is not cut into tiny inserts.

Errors, by what can fix them:
- A write failing on a transient error (a store or broker down) blocks the worker while the
  writer retries, up to the writers' `deadline_s` (setting `sink_retry_deadline_s`;
  docs/faults.md): nothing is read or snapshotted meanwhile, so the flow never advances past
  output it has not written, and a short outage only delays it. Past the deadline it is logged
  and raised: the flow stops, and a restart with recovery replays from the last snapshot.
- A store refusing the values of some row for good (`refused_value` on the writer's error: a
  NUL Postgres will not hold, a CHECK constraint, a value the driver cannot serialise) is the
  row's fault, not the batch's. The partition isolates it: it drops the buffered rows and
  writes the records of the batch again in halves, splitting each half that is refused, until
  the refused records stand alone; those become dead letters with the store's reason
  (`sinks.dead_letters`), the others are written, and the flow goes on. A batch of n records
  with k refused takes about 2k log2(n) writes, once. Before, the refused row stopped the flow
  at the checkpoint, and the replay brought it back after every restart.
- Any other error no retry can fix (a missing table) is logged at `write_batch` with the rows
  kept, and raised at the checkpoint if the checkpoint's flush fails too: the flow stops
  rather than snapshot offsets for output that was not written.
- A record that cannot be mapped to rows (a value out of its column's range) is a dead letter
  `unstorable_value` (logged and skipped when the sink has no dead-letter output).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bytewax.outputs import StatefulSinkPartition

from sinks.dead_letters import DeadLetterOutput

log = logging.getLogger("tapeflow.sinks.bytewax")

Rows = list[tuple[str, Any]]


class RowWriter(Protocol):
    """What a sink partition needs of a batching writer (ClickHouse or Postgres)."""

    def buffer(self, table: str, row: Any) -> None: ...

    def discard(self) -> None: ...

    def flush_if_due(self) -> int: ...

    def flush(self) -> int: ...

    def close(self) -> None: ...


class WriterPartition(StatefulSinkPartition[Any, None]):
    """One batching writer behind a Bytewax sink: map each record to (table, row) pairs,
    buffer them, flush when the writer's bounds say so and at every snapshot.

    `unmappable` are the errors of `to_rows` that mean "this record has no row";
    `write_error` is the writer's error after its retries (module docstring for what each
    kind does); `dead_letters` builds where refused records go (None: refusals stop the flow
    like any permanent error, and unmappable records are logged and skipped).
    """

    def __init__(self, writer: RowWriter, to_rows: Callable[[Any], Iterable[tuple[str, Any]]],
                 *, store: str, unmappable: tuple[type[Exception], ...],
                 write_error: type[Exception],
                 dead_letters: DeadLetterOutput | None = None) -> None:
        self._writer = writer
        self._to_rows = to_rows
        self._store = store
        self._unmappable = unmappable
        self._write_error = write_error
        self._dead_letters = dead_letters
        self._pending: list[tuple[Any, Rows]] = []
        """The records whose rows the writer may still hold unwritten, with their rows."""
        self._stopped = False
        self._last: Exception | None = None
        """The error of the last refused write while isolating."""
        self.skipped = 0
        self.refused = 0

    def write_batch(self, values: list[Any]) -> None:
        writer = self._writer
        for record in values:
            try:
                rows = list(self._to_rows(record))
            except self._unmappable as exc:
                self._unstorable(record, exc)
                continue
            self._pending.append((record, rows))
            for table, row in rows:
                writer.buffer(table, row)
            self._flush_if_due()
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        try:
            if self._writer.flush_if_due():
                self._pending = []  # everything buffered so far is written
        except self._write_error as exc:
            self._failed(exc)

    def _unstorable(self, record: Any, exc: Exception) -> None:
        self.skipped += 1
        if self._dead_letters is None:
            log.error("not stored in %s: %s", self._store, exc)
            return
        self._dead_letters.unstorable(f"{self._store}: {exc}; record: {_describe(record)}")

    def _failed(self, exc: Exception) -> None:
        """A write failed after the writer's retries: transient errors stop the flow now, a
        refused value is isolated, anything else keeps the rows for the checkpoint's flush,
        which raises if it fails too."""
        if getattr(exc, "transient", False):
            self._stops(exc)
        if self._isolates(exc):
            self._isolate()
            return
        log.error("%s write failed, rows kept for the next flush: %s", self._store, exc)

    def _isolates(self, exc: Exception) -> bool:
        return self._dead_letters is not None and bool(getattr(exc, "refused_value", False))

    def _isolate(self) -> None:
        """Write the pending records again without the ones the store refuses; those become
        dead letters, made durable before this returns (so before any snapshot)."""
        assert self._dead_letters is not None
        pending, self._pending = self._pending, []
        self._writer.discard()
        refused = self._split(pending)
        for record, rows, exc in refused:
            self.refused += 1
            self._dead_letters.refused(rows, f"{self._store} refused {_tables(rows)}: "
                                             f"{_cause(exc)}; record: {_describe(record)}")
        try:
            self._dead_letters.flush()
        except Exception as exc:  # the letters are not durable: no snapshot may cover them
            self._stops(exc)
        log.warning("%s refused %d of %d record(s) of a batch: dead letters; the other %d are "
                    "written", self._store, len(refused), len(pending),
                    len(pending) - len(refused))

    def _split(self, items: list[tuple[Any, Rows]]
               ) -> list[tuple[Any, Rows, Exception | None]]:
        """The refused records among `items` (whose write as a whole was refused), writing the
        others; raises (stopping the flow) on any error that is not a refused value."""
        if len(items) == 1:
            return [] if self._written(items) else [(*items[0], self._last)]
        middle = len(items) // 2
        refused = []
        for half in (items[:middle], items[middle:]):
            if not self._written(half):
                refused += ([(*half[0], self._last)] if len(half) == 1 else self._split(half))
        return refused

    def _written(self, items: list[tuple[Any, Rows]]) -> bool:
        """Write `items` alone: True when written, False when the store refused a value (the
        error kept in `_last`); any other failure stops the flow."""
        writer = self._writer
        writer.discard()
        for _record, rows in items:
            for table, row in rows:
                writer.buffer(table, row)
        try:
            writer.flush()
        except self._write_error as exc:
            writer.discard()
            if getattr(exc, "transient", False) or not getattr(exc, "refused_value", False):
                self._stops(exc)
            self._last = exc
            return False
        return True

    def snapshot(self) -> None:
        try:
            self._writer.flush()
        except self._write_error as exc:
            if getattr(exc, "transient", False) or not self._isolates(exc):
                self._stops(exc)
            self._isolate()
        self._pending = []

    def close(self) -> None:
        if self._stopped:
            # Bytewax closes the partitions while unwinding from the error: a second raise
            # there is a panic in a destructor, which hangs the process instead of ending it.
            return
        self.snapshot()
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


def _tables(rows: Rows) -> str:
    """'orders, positions' for the rows of one record."""
    return ", ".join(dict.fromkeys(table for table, _ in rows)) or "no table"


def _cause(exc: Exception | None) -> str:
    """The store's own reason: the first line of the writer error's cause, else its own."""
    cause = (exc.__cause__ or exc) if exc is not None else None
    if cause is None:
        return "no reason given"
    text = str(cause).strip()
    first = text.splitlines()[0] if text else ""
    state = getattr(cause, "sqlstate", None)
    name = type(cause).__name__ + (f" [SQLSTATE {state}]" if state else "")
    return f"{name}: {first}" if first else name


def _describe(record: Any, limit: int = 300) -> str:
    """A record for a dead letter's detail: its repr (escapes NUL and controls), cut short."""
    text = repr(record)
    return text if len(text) <= limit else text[:limit] + "..."
