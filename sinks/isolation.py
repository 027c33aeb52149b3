"""Records into a batching writer, with the refused ones isolated: the synchronous core that
both sink partitions (`sinks.partition`) drive, the plain one from the Bytewax worker, the
background one from its writer thread.

Why one class: what a partition does with a store's errors is the delivery contract (read the
`sinks.partition` docstring), and it must not differ with the thread the writer runs on. So the
buffering, the flushes, the errors and the isolation of refused records live here once.

How a record gets in: `buffer(record)` puts it into the writer without flushing, whatever the
writer makes of it. A row writer buffers its rows (the market flow's ClickHouse sink); the
trading writers keep the latest state per key and build rows at the flush (`PostgresWriter.
buffer_output`, `TradingClickHouseWriter.buffer_record`). Either way the records handed over
since the last complete write are kept (`pending`), so that:

Isolation: when a flush fails because the store refused the values of some row for good
(`refused_value` on the writer's error), the writer's buffer is discarded and the pending
records are buffered and written again in halves, splitting each half that is refused, until
each refused record stands alone. Those become `store_refused` dead letters, with the store's
reason and the record's rows (`rows(record)`: every row of that record, the form `tapeflow dlq
replay` writes); the others are written and the flow goes on. A batch of n records with k
refused takes about 2k log2(n) writes, once.

Isolation and latest-state writers: a subset of the pending records, buffered again, coalesces
to the latest state per key within the subset, so the halves may write an older state of a key
before a newer one, or a key's newest state may be refused while an older one is written. The
stores' guards make that harmless: versioned tables keep the highest version written, append-
only ones the first row, so the tables end as writing every record but the refused ones in
order would (tests/unit/test_writer_partition.py, tests/integration/test_poison_rows.py).

Records with no storable row become `unstorable_value` letters: a `buffer` raising one of
`unmappable`, or a state the writer finds it cannot map when it builds the rows at a flush
(such a writer has an `on_unmapped` hook, pointed here; one letter per state, even when the
isolation buffers it again). Without a dead-letter output a refused value stops the flow like
any other permanent error, and an unmappable record is logged and skipped.

Letters are made durable (`DeadLetterOutput.flush`) before any checkpoint completes: after an
isolation, and at every `flush`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from sinks.dead_letters import DeadLetterOutput

log = logging.getLogger("tapeflow.sinks.bytewax")

Rows = list[tuple[str, Any]]


class RowWriter(Protocol):
    """What the isolation needs of a batching writer (ClickHouse or Postgres)."""

    def discard(self) -> None: ...

    def flush_if_due(self) -> int: ...

    def flush(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class MapsAtFlush(Protocol):
    """A writer that builds its rows at the flush, so finds only then a state that does not
    fit its columns: it leaves the state out and calls `on_unmapped(state, error)`."""

    on_unmapped: Callable[[Any, Exception], None]


class IsolatingWriter:
    """Records into `writer` through `buffer`, flushed when due and at `flush`; refused records
    isolated into dead letters (module docstring).

    Any failure that must stop the flow (a transient error past the writer's retries; an error
    no retry fixes at the checkpoint; dead letters the broker will not take) is logged once and
    raised, with `stopped` set: the caller lets it end the flow.
    """

    def __init__(self, writer: RowWriter, buffer: Callable[[Any], object],
                 rows: Callable[[Any], Iterable[tuple[str, Any]]], *, store: str,
                 unmappable: tuple[type[Exception], ...], write_error: type[Exception],
                 dead_letters: DeadLetterOutput | None = None) -> None:
        self._writer = writer
        self._buffer = buffer
        self._rows = rows
        self._store = store
        self._unmappable = unmappable
        self._write_error = write_error
        self._dead_letters = dead_letters
        self._pending: list[Any] = []
        """The records whose rows the writer may still hold unwritten."""
        self._unflushed = 0
        """Dead letters sent since the dead-letter output was last flushed."""
        self._lettered: set[str] = set()
        """Letters of states found unmappable at a flush, for the pending records."""
        self._last: Exception | None = None
        """The error of the last refused write while isolating."""
        self.stopped = False
        self.failing = False
        """A write failed on an error no retry fixes and the rows are kept for the next
        flush (a background partition does not retry those on its idle clock)."""
        self.skipped = 0
        self.refused = 0
        if isinstance(writer, MapsAtFlush):
            writer.on_unmapped = self._unmapped_at_flush

    def write(self, records: Iterable[Any]) -> None:
        """Buffer `records` in order, flushing whenever the writer's bounds say so."""
        for record in records:
            self.add(record)
            self.flush_if_due()

    def write_all(self, records: Iterable[Any]) -> None:
        """Buffer `records` (one batch of a flow whose items are batches), then flush if due:
        the writer's bounds are checked once per batch, not per record, so a flush may hold up
        to a batch more than `max_rows`."""
        buffer, pending, unmappable = self._buffer, self._pending, self._unmappable
        for record in records:
            try:
                buffer(record)
            except unmappable as exc:
                self._unstorable(exc, record)
                continue
            pending.append(record)
        self.flush_if_due()

    def add(self, record: Any) -> None:
        """Buffer one record, without flushing."""
        try:
            self._buffer(record)
        except self._unmappable as exc:
            self._unstorable(exc, record)
            return
        self._pending.append(record)

    def flush_if_due(self) -> None:
        try:
            written = self._writer.flush_if_due()
        except self._write_error as exc:
            self._failed(exc)
            return
        if written:
            self._written_all()

    def flush(self) -> None:
        """Write everything buffered (a checkpoint): refused records isolated, every dead
        letter made durable; anything else that fails stops the flow."""
        try:
            self._writer.flush()
        except self._write_error as exc:
            if getattr(exc, "transient", False) or not self._isolates(exc):
                self._stop(exc)
            self._isolate()
        self._written_all()
        self._flush_letters()

    def close(self) -> None:
        """The last flush, then the writer closed."""
        self.flush()
        try:
            self._writer.close()
        except self._write_error as exc:
            self._stop(exc)

    def _written_all(self) -> None:
        self._pending = []
        self._lettered.clear()
        self.failing = False

    def _unstorable(self, exc: Exception, record: Any) -> None:
        self.skipped += 1
        if self._dead_letters is None:
            log.error("not stored in %s: %s", self._store, exc)
            return
        self._dead_letters.unstorable(f"{self._store}: {exc}; record: {_describe(record)}")
        self._unflushed += 1

    def _unmapped_at_flush(self, item: Any, exc: Exception) -> None:
        """The writer's hook: a buffered state it could not map to a row at a flush."""
        detail = f"{exc}; record: {_describe(item)}"
        if detail not in self._lettered:  # the isolation may buffer the same state again
            self._lettered.add(detail)
            self._unstorable(exc, item)

    def _failed(self, exc: Exception) -> None:
        """A write between checkpoints failed after the writer's retries: transient errors
        stop the flow now, a refused value is isolated, anything else keeps the rows for the
        checkpoint's flush, which raises if it fails too."""
        if getattr(exc, "transient", False):
            self._stop(exc)
        if self._isolates(exc):
            self._isolate()
            return
        self.failing = True
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
        for record, exc in refused:
            self.refused += 1
            rows = self._rows_of(record)
            self._dead_letters.refused(rows, f"{self._store} refused {_tables(rows)}: "
                                             f"{_cause(exc)}; record: {_describe(record)}")
            self._unflushed += 1
        self._written_all()
        self._flush_letters()
        log.warning("%s refused %d of %d record(s) of a batch: dead letters; the other %d are "
                    "written", self._store, len(refused), len(pending),
                    len(pending) - len(refused))

    def _split(self, items: list[Any]) -> list[tuple[Any, Exception | None]]:
        """The refused records among `items` (whose write as a whole was refused), writing the
        others; stops the flow on any error that is not a refused value."""
        if len(items) == 1:
            return [] if self._written(items) else [(items[0], self._last)]
        middle = len(items) // 2
        refused: list[tuple[Any, Exception | None]] = []
        for half in (items[:middle], items[middle:]):
            if not self._written(half):
                refused += [(half[0], self._last)] if len(half) == 1 else self._split(half)
        return refused

    def _written(self, items: list[Any]) -> bool:
        """Write `items` alone: True when written, False when the store refused a value (the
        error kept in `_last`); any other failure stops the flow."""
        writer = self._writer
        writer.discard()
        for record in items:
            self._buffer(record)  # buffered once already: it maps
        try:
            writer.flush()
        except self._write_error as exc:
            writer.discard()
            if getattr(exc, "transient", False) or not getattr(exc, "refused_value", False):
                self._stop(exc)
            self._last = exc
            return False
        return True

    def _rows_of(self, record: Any) -> Rows:
        """A refused record's rows, for its letter (none if they cannot even be mapped)."""
        try:
            return list(self._rows(record))
        except self._unmappable:
            return []

    def _flush_letters(self) -> None:
        if not self._unflushed or self._dead_letters is None:
            return
        try:
            self._dead_letters.flush()
        except Exception as exc:  # the letters are not durable: no snapshot may cover them
            self._stop(exc)
        self._unflushed = 0

    def _stop(self, exc: Exception) -> None:
        """The rows cannot be written: say so in one line (Bytewax reports only a panic),
        then raise, so no snapshot covers the unwritten rows."""
        self.stopped = True
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
