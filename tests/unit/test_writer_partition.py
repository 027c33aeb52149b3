"""The Bytewax sink partitions over a batching writer (sinks/partition.py `WriterPartition`, and
`BackgroundWriterPartition` with the writer on a thread of its own): what they do with a
writer's errors. Table-driven over the outcomes that matter for delivery: a transient error that
outlasted the retries stops the flow (at once, or at the worker's next call); an error no retry
can fix keeps the rows and stops the flow at the checkpoint; a value the store refuses is
isolated (the other records written, the refused ones dead letters, the flow going on), on
either partition; after a stop, `close` (called by Bytewax while unwinding) writes nothing and
raises nothing, since a second raise there hung the process. Isolation with a writer that keeps
the latest state per key: tests/unit/test_isolation.py; through the real Postgres and chDB:
tests/integration/test_poison_rows.py."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from sinks.kafka.flow_sink import KafkaRecordSink
from sinks.kafka.producer import DeliveryError
from sinks.partition import BackgroundWriterPartition, WriterPartition
from tests.support.sink_doubles import FailingWriter, Letters, LettersOutput, WriteError

QUIET = logging.getLogger("tests.quiet_kafka")
QUIET.setLevel(logging.CRITICAL)  # "connection refused" is the point, not news


def _rows(record: Any) -> list[tuple[str, Any]]:
    if record == "unmappable":
        raise TypeError("9e99 does not fit NUMERIC(18, 8)")
    return [("t", record)]


def _partition(writer: FailingWriter, letters: Letters | None = None) -> WriterPartition:
    return WriterPartition(writer, _rows, store="Store", unmappable=(TypeError,),
                           write_error=WriteError,
                           dead_letters=LettersOutput(letters) if letters else None)


def _background(writer: FailingWriter,
                letters: Letters | None = None) -> BackgroundWriterPartition:
    def buffer(record: Any) -> None:
        for table, row in _rows(record):
            writer.buffer(table, row)

    return BackgroundWriterPartition(writer, buffer, _rows, store="Store",
                                     unmappable=(TypeError,), write_error=WriteError,
                                     dead_letters=LettersOutput(letters) if letters else None,
                                     idle_s=0.01)


BUILD = {"worker": _partition, "background": _background}
EITHER = pytest.mark.parametrize("kind", list(BUILD))


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




# Isolation, on either partition.


@EITHER
@pytest.mark.parametrize(("records", "poison", "due_every"), [
    (list(range(1, 17)), {5}, 100),  # refused at the checkpoint's flush
    (list(range(1, 17)), {1, 16}, 100),
    (list(range(1, 33)), {3, 4, 5, 30}, 8),  # refused at flushes between checkpoints
    (list(range(1, 9)), set(range(1, 9)), 100),  # everything refused
    ([7], {7}, 1),
])
def test_a_refused_value_is_isolated_and_the_flow_goes_on(
        kind: str, records: list[int], poison: set[int], due_every: int,
        caplog: pytest.LogCaptureFixture) -> None:
    writer = FailingWriter(None, due_every=due_every, poison=frozenset(poison))
    letters = Letters()
    part = BUILD[kind](writer, letters)
    with caplog.at_level(logging.WARNING):
        part.write_batch(records)
        part.snapshot()  # no raise: the flow goes on
    part.write_batch([100])  # and keeps writing
    part.snapshot()
    want = [("t", r) for r in [*records, 100] if r not in poison]
    assert sorted(writer.written) == sorted(want)  # each written once, none lost
    assert sorted(rows[0][1] for rows, _ in letters.refused) == sorted(poison)
    assert all("Store refused t: ValueError: NUL in" in detail for _, detail in letters.refused)
    assert letters.flushed == len(poison)  # durable before the snapshot returned
    assert part.refused == len(poison)
    # Isolation costs about 2 writes per refused record per halving, not one per record.
    assert writer.flushes <= 4 + 2 * len(poison) * max(1, len(records)).bit_length() + 2
    part.close()
    assert writer.closed == 1


@EITHER
def test_an_unmappable_record_is_a_dead_letter_not_a_log_line_only(kind: str) -> None:
    writer = FailingWriter(None)
    letters = Letters()
    part = BUILD[kind](writer, letters)
    part.write_batch([1, "unmappable", 2])
    part.snapshot()
    assert writer.written == [("t", 1), ("t", 2)]
    assert letters.unstorable == ["Store: 9e99 does not fit NUMERIC(18, 8); record: "
                                  "'unmappable'"]
    assert letters.flushed == 1  # durable before the snapshot returned
    part.close()


@EITHER
def test_a_refused_value_without_a_dead_letter_output_stops_at_the_checkpoint(
        kind: str) -> None:
    writer = FailingWriter(None, due_every=100, poison=frozenset({2}))
    part = BUILD[kind](writer)
    part.write_batch([1, 2, 3])
    with pytest.raises(WriteError, match="value 2 refused"):
        part.snapshot()
    assert writer.written == []
    part.close()
    assert writer.closed == 0


@EITHER
def test_an_error_that_is_not_a_value_stops_even_while_isolating(kind: str) -> None:
    """A store that goes away mid-isolation: transient, so the flow stops (never a dead letter
    for a record the store did not refuse)."""
    writer = FailingWriter(None, due_every=100, poison=frozenset({2}))
    letters = Letters()
    part = BUILD[kind](writer, letters)
    part.write_batch([1, 2, 3, 4])
    original = writer.flush

    def flaky() -> int:
        if writer.flushes >= 1:
            writer.error = WriteError("connection lost", transient=True)
        return original()

    writer.flush = flaky  # type: ignore[method-assign]
    with pytest.raises(WriteError, match="connection lost"):
        part.snapshot()
    assert letters.refused == [] and writer.written == []
    part.close()


# What only the background partition does: the worker hands records over and goes on.


class SlowWriter(FailingWriter):
    """A FailingWriter whose flushes take `delay_s` and are only due at a checkpoint."""

    def __init__(self, error: WriteError | None, delay_s: float = 0.0) -> None:
        super().__init__(error)
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def flush_if_due(self) -> int:
        return 0

    def flush(self) -> int:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return super().flush()


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
    part.write_batch([1])  # the thread's flush is due at once and fails
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
    part.write_batch([1, 2])  # each due flush fails: logged, kept
    time.sleep(0.05)
    writer.error = None  # the table is back before the checkpoint
    part.snapshot()
    part.close()
    assert writer.written == [("t", 1), ("t", 2)] and writer.closed == 1
