"""The Bytewax sink partition over a batching writer (sinks/partition.py `WriterPartition`):
what it does with a writer's errors. Table-driven over the three outcomes that matter for
delivery: a transient error that outlasted the retries stops the flow at once; an error no retry
can fix keeps the rows and stops the flow at the checkpoint; after a stop, `close` (called by
Bytewax while unwinding) writes nothing and raises nothing, since a second raise there hung the
process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from sinks.kafka.flow_sink import KafkaRecordSink
from sinks.kafka.producer import DeliveryError
from sinks.partition import BackgroundWriterPartition, WriterPartition

QUIET = logging.getLogger("tests.quiet_kafka")
QUIET.setLevel(logging.CRITICAL)  # "connection refused" is the point, not news


class WriteError(RuntimeError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class FailingWriter:
    """Holds rows; every flush fails with `error` while it is set."""

    def __init__(self, error: WriteError | None) -> None:
        self.error = error
        self.rows: list[Any] = []
        self.written: list[Any] = []
        self.closed = 0

    def add(self, table: str, row: Any) -> int:
        self.rows.append((table, row))
        return self.flush_if_due()

    def flush_if_due(self) -> int:
        return self.flush()

    def flush(self) -> int:
        if self.error is not None:
            raise self.error
        count = len(self.rows)
        self.written += self.rows
        self.rows = []
        return count

    def close(self) -> None:
        self.closed += 1
        self.flush()


def _partition(writer: FailingWriter) -> WriterPartition:
    return WriterPartition(writer, lambda record: [("t", record)], store="Store",
                           unmappable=(TypeError,), write_error=WriteError)


def test_a_transient_error_after_the_retries_stops_the_flow_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    writer = FailingWriter(WriteError("insert of 1 rows into t failed 9 times", transient=True))
    part = _partition(writer)
    with caplog.at_level(logging.ERROR), pytest.raises(WriteError):
        part.write_batch([1])
    assert "Store write failed, the flow stops (a restart with recovery replays): insert of " \
        "1 rows into t" in caplog.text
    assert writer.rows == [("t", 1)]  # never dropped
    part.close()  # unwinding: nothing written, nothing raised
    assert writer.closed == 0


def test_a_permanent_error_keeps_the_rows_and_stops_the_flow_at_the_checkpoint(
        caplog: pytest.LogCaptureFixture) -> None:
    writer = FailingWriter(WriteError("no such table t", transient=False))
    part = _partition(writer)
    with caplog.at_level(logging.ERROR):
        part.write_batch([1, 2])  # logged, kept: the flow goes on to the checkpoint
    assert writer.rows == [("t", 1), ("t", 2)]
    assert "Store write failed, rows kept for the next flush: no such table t" in caplog.text
    with pytest.raises(WriteError):
        part.snapshot()
    assert "the flow stops" in caplog.text
    part.close()
    assert writer.closed == 0 and writer.written == []


def test_a_store_that_recovers_before_the_checkpoint_loses_nothing() -> None:
    writer = FailingWriter(WriteError("no such table t", transient=False))
    part = _partition(writer)
    part.write_batch([1, 2])
    writer.error = None  # the table is back before the checkpoint
    part.snapshot()
    part.close()
    assert writer.written == [("t", 1), ("t", 2)] and writer.closed == 1


def test_a_kafka_sink_whose_broker_never_answers_stops_at_the_deadline(
        caplog: pytest.LogCaptureFixture) -> None:
    # A real producer with nothing listening (port 1): the record waits `deadline_s` (1 s
    # here: librdkafka's message.timeout.ms and the checkpoint's flush), then the checkpoint
    # stops the flow with one line; close, called while Bytewax unwinds, does not flush again.
    sink = KafkaRecordSink({"bootstrap.servers": "127.0.0.1:1", "logger": QUIET}, "t.alerts",
                           encode=lambda record: record, key=lambda record: None,
                           deadline_s=1.0)
    part = sink.build_part("out", "t.alerts", None)
    part.write_batch([b"x"])
    with caplog.at_level(logging.ERROR, logger="tapeflow.sinks.bytewax"), \
            pytest.raises(DeliveryError):
        part.snapshot()
    assert "Kafka write to t.alerts failed, the flow stops" in caplog.text
    part.close()  # returns at once, raises nothing


# The same contract with the writer on a thread of its own (`BackgroundWriterPartition`).


class SlowWriter(FailingWriter):
    """A FailingWriter whose flushes take `delay_s` and are only due at a checkpoint."""

    def __init__(self, error: WriteError | None, delay_s: float = 0.0) -> None:
        super().__init__(error)
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def add(self, table: str, row: Any) -> int:
        self.rows.append((table, row))
        return 0

    def flush_if_due(self) -> int:
        return 0

    def flush(self) -> int:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return super().flush()


def _background(writer: FailingWriter) -> BackgroundWriterPartition:
    def consume(record: Any) -> None:
        if record == "unmappable":
            raise TypeError("no table for it")
        writer.add("t", record)

    return BackgroundWriterPartition(writer, consume, store="Store", unmappable=(TypeError,),
                                     write_error=WriteError, idle_s=0.01)


def test_background_writes_leave_the_worker_and_the_checkpoint_waits_for_them() -> None:
    writer = SlowWriter(None, delay_s=0.2)
    part = _background(writer)
    started = time.monotonic()
    part.write_batch([1, 2])
    part.write_batch(["unmappable", 3])
    assert time.monotonic() - started < 0.1  # handing over does not wait for the store
    part.snapshot()  # ... but the checkpoint does: everything handed over is written
    assert writer.written == [("t", 1), ("t", 2), ("t", 3)]
    assert time.monotonic() - started >= 0.2
    assert part.skipped == 1
    assert writer.threads == {"tapeflow-Store-writer"}
    part.close()
    assert writer.closed == 1


def test_background_transient_error_stops_the_flow_at_the_next_call(
        caplog: pytest.LogCaptureFixture) -> None:
    writer = FailingWriter(WriteError("insert of 1 rows into t failed 9 times", transient=True))
    part = _background(writer)
    part.write_batch([1])  # the thread's add flushes at once and fails
    deadline = time.monotonic() + 5
    with caplog.at_level(logging.ERROR), pytest.raises(WriteError):
        while time.monotonic() < deadline:
            part.write_batch([2])
            time.sleep(0.01)
    assert "Store write failed, the flow stops" in caplog.text
    assert writer.written == [] and ("t", 1) in writer.rows  # never dropped
    part.close()  # unwinding: nothing written, nothing raised
    assert writer.closed == 0


def test_background_permanent_error_keeps_the_rows_and_stops_at_the_checkpoint(
        caplog: pytest.LogCaptureFixture) -> None:
    writer = SlowWriter(WriteError("no such table t", transient=False))
    part = _background(writer)
    part.write_batch([1, 2])
    with caplog.at_level(logging.ERROR), pytest.raises(WriteError):
        part.snapshot()
    assert writer.rows == [("t", 1), ("t", 2)] and writer.written == []
    assert "the flow stops" in caplog.text
    part.close()
    assert writer.closed == 0


def test_background_store_that_recovers_before_the_checkpoint_loses_nothing() -> None:
    writer = FailingWriter(WriteError("no such table t", transient=False))
    part = _background(writer)
    part.write_batch([1, 2])  # each add's flush fails: logged, kept
    time.sleep(0.05)
    writer.error = None  # the table is back before the checkpoint
    part.snapshot()
    part.close()
    assert writer.written == [("t", 1), ("t", 2)] and writer.closed == 1
