"""Bytewax sinks over the batching writers: ClickHouse rows and Kafka records.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.clickhouse_rows import TABLE_COLUMNS, RowRangeError, to_row
from sinks.clickhouse_sink import ClickHouseWriteError, ClickHouseWriter
from sinks.kafka_producer import DeliveryError, KafkaWriter

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


class ClickHouseSink(FixedPartitionedSink[Any, None]):
    """Records into their ClickHouse tables: by default the market's (Trade, Quote, Rejection,
    Candle); the trading flow passes its own `mapper` and `columns`
    (`sinks.clickhouse_trading_rows`).

    `client_factory` opens a clickhouse-connect client (`sinks.stores.open_clickhouse`); it is
    called when the partition is built, on the worker that writes. One partition: the embedded
    chDB allows one writer process anyway, and a server takes batches from one writer per flow
    process easily (docs/stores.md: 100-200k rows/s). `deadline_s`: how long a failing insert
    is retried (`sinks.batching.BatchPolicy`; None: the writer's attempts).
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


class _KafkaPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, writer: KafkaWriter, topic: str, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None]) -> None:
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self._key = key
        self.skipped = 0
        self.stopped = False

    def write_batch(self, values: list[Any]) -> None:
        for record in values:
            try:
                value = self._encode(record)
                key = self._key(record)
            except Exception as exc:
                self.skipped += 1
                log.error("not written to %s: %s: %r", self._topic, exc, record)
                continue
            self._writer.send(self._topic, value, key=key)

    def snapshot(self) -> None:
        checkpoint_flush(self._writer, self._topic, self)

    def close(self) -> None:
        if not self.stopped:
            checkpoint_flush(self._writer, self._topic, self)


class _Stoppable(Protocol):
    stopped: bool


def checkpoint_flush(writer: KafkaWriter, topic: str, partition: _Stoppable) -> None:
    """Flush a Kafka sink partition's producer at a checkpoint (or close). Records the broker
    refused or did not acknowledge within the writer's timeout stop the flow: one error line,
    then the raise; `partition.stopped` tells `close` not to flush again while Bytewax unwinds
    (a second raise there hangs the process, and a second flush would wait the timeout again).
    """
    try:
        writer.flush()
    except DeliveryError as exc:
        partition.stopped = True
        log.error("Kafka write to %s failed, the flow stops (a restart with recovery "
                  "replays): %s", topic, exc)
        raise


class KafkaRecordSink(FixedPartitionedSink[Any, None]):
    """Core records, encoded by `encode` (the codec), to one topic through a batched producer
    (`sinks.kafka_producer.KafkaWriter`: librdkafka batches, flushed at each checkpoint instead
    of after every Bytewax batch as the stock KafkaSink does).

    `deadline_s`: how long a record may wait for the broker (librdkafka `message.timeout.ms`)
    and a checkpoint's flush may block, so a broker outage shorter than that only delays the
    flow (docs/faults.md); None: librdkafka's 5 min and a 60 s flush."""

    def __init__(self, conf: dict[str, Any], topic: str, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], *, deadline_s: float | None = None) -> None:
        self._conf = conf
        self._deadline_s = deadline_s
        self._topic = topic
        self._encode = encode
        self._key = key

    def list_parts(self) -> list[str]:
        return [self._topic]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaPartition:
        return _KafkaPartition(KafkaWriter.for_deadline(self._conf, self._deadline_s),
                               self._topic, self._encode, self._key)
