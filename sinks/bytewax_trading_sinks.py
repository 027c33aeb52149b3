"""Bytewax sinks for the trading flow: Postgres state and ClickHouse trading tables.

Same contract as `sinks.bytewax_sinks` (read that docstring): `FixedPartitionedSink`s with one
partition, flushed at every epoch's `snapshot()` so a recovery snapshot never covers output
that only lived in memory; between checkpoints the writers' own size and age bounds apply.
A record that cannot be mapped is logged and skipped (never raised: one exception kills the
dataflow); a failing write blocks while the writer retries, and an error that outlasts the
retries stops the flow (`sinks.bytewax_sinks`, docs/faults.md), so it never snapshots offsets
for output that was not written.

`DedupKafkaRecordSink` writes records with a deterministic identity (alerts) to a topic once:
it reads the identities of the topic's recent records when its partition is built.

Idempotence is the stores': Postgres upserts guarded by a monotonic version, first-wins
inserts for `execution_log` and `alerts` (docs/postgres-sink.md); ClickHouse
ReplacingMergeTree keys (`sinks.clickhouse_trading_rows`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Consumer, TopicPartition

from sinks.bytewax_sinks import WriterPartition, checkpoint_flush
from sinks.clickhouse_trading_rows import to_row as trading_to_row
from sinks.kafka_producer import KafkaWriter
from sinks.postgres_rows import PgRangeError, trading_rows
from sinks.postgres_sink import PostgresWriteError, PostgresWriter
from tapeflow.trading_step import ExecutionResult, PnlSnapshot, StateChange

log = logging.getLogger("tapeflow.sinks.bytewax")


_VERSION_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
VERSION_BASE_SHIFT = 20
MARK_VERSIONED_TABLES = frozenset({"positions", "accounts"})
"""Postgres tables whose `version` counts marks as well as reports (the others' versions count
reports only and are the same in every run)."""


def restart_version_base(now_ms: int | None = None) -> int:
    """Added to the versions of mark-revalued rows (positions, accounts, pnl_snapshots) that
    this process writes: the writer's start time in ms since 2024 x 2^20.

    Why: a position's or account's version counts every change, marks included, and how marks
    interleave with reports differs between a process killed mid-run and the replay that
    resumes from its last snapshot. The dead process may have written a state (older in the
    reports) with a *higher* version than the replay's final state, and the version guard
    (`WHERE version < excluded.version`, ReplacingMergeTree(version)) would keep it forever:
    seen in tests/integration/test_trading_recovery.py (a closed position left open). With
    the base, any row a restarted process writes outranks every row of the processes before it,
    and the replay rewrites every row the dead process wrote after the snapshot (it replays the
    same reports and marks from there), ending at its final state. Within a process the
    version still only grows. The versions stay monotonic across restarts as long as a
    process makes fewer than 2^20 changes per account per millisecond of its life; they fit
    BIGINT / UInt64 until 2300. Cost: a second run over the same input (or a replay) rewrites
    these rows, passing through older states, instead of leaving them untouched.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return max(0, ms - _VERSION_EPOCH_MS) << VERSION_BASE_SHIFT


def _rebase(rows: list[tuple[str, Any]], version_base: int) -> list[tuple[str, Any]]:
    if not version_base:
        return rows
    return [(table, {**row, "version": row["version"] + version_base})
            if table in MARK_VERSIONED_TABLES else (table, row) for table, row in rows]


def _postgres_rows(item: Any, version_base: int = 0) -> Any:
    """The (table, row) pairs of one trading item for Postgres."""
    if isinstance(item, ExecutionResult):
        return _rebase(trading_rows(item.output, item.report), version_base)
    if isinstance(item, StateChange):
        return _rebase(trading_rows(item.output), version_base)
    raise TypeError(f"no Postgres table for {type(item).__name__} records")


def clickhouse_trading_mapper(version_base: int = 0) -> Callable[[Any], tuple[str, Any]]:
    """`sinks.clickhouse_trading_rows.to_row` with `version_base` added to the versions of
    `pnl_snapshots` rows (see `restart_version_base`)."""
    def to_row(record: Any) -> tuple[str, Any]:
        if version_base and isinstance(record, PnlSnapshot):
            record = record._replace(version=record.version + version_base)
        return trading_to_row(record)
    return to_row


class PostgresSink(FixedPartitionedSink[Any, None]):
    """`ExecutionResult` and `StateChange` items into orders, positions, accounts,
    execution_log and alerts. `writer_factory` builds a `PostgresWriter` on the worker that
    writes (`lambda: PostgresWriter.from_dsn(dsn, schema)`); `version_base` is added to the
    versions of positions and accounts (`restart_version_base`)."""

    def __init__(self, writer_factory: Callable[[], PostgresWriter],
                 version_base: int = 0) -> None:
        self._writer_factory = writer_factory
        self._version_base = version_base

    def list_parts(self) -> list[str]:
        return ["postgres"]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> WriterPartition:
        base = self._version_base
        return WriterPartition(self._writer_factory(),
                               lambda item: _postgres_rows(item, base), store="Postgres",
                               unmappable=(PgRangeError, TypeError, ValueError),
                               write_error=PostgresWriteError)


def recent_keys(conf: dict[str, Any], topic: str, key_of: Callable[[bytes], str | None],
                per_partition: int, timeout_s: float = 30.0) -> list[str]:
    """The identities (`key_of(value)`) of the last `per_partition` records of each partition
    of `topic`, oldest first; values `key_of` cannot read are skipped."""
    consumer = Consumer({**conf, "group.id": f"tapeflow-dedup-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    found: list[str] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in meta.topics:
            return found
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in sorted(meta.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                       timeout=timeout_s)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, max(low, high - per_partition)))
        if not starts:
            return found
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the tail of {topic} took over {timeout_s} s")
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            try:
                key = key_of(msg.value() or b"")
            except Exception:
                key = None
            if key is not None:
                found.append(key)
            part, offset = msg.partition(), msg.offset()
            if part is not None and offset is not None and offset + 1 >= ends.get(part, 0):
                ends.pop(part, None)
    finally:
        consumer.close()
    return found


class _DedupKafkaPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, writer: KafkaWriter, topic: str, *, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], identity: Callable[[Any], str],
                 seen: list[str], remember: int) -> None:
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self._key = key
        self._identity = identity
        self._order: deque[str] = deque(seen[-remember:], maxlen=remember)
        self._seen = set(self._order)
        self.skipped = 0
        self.suppressed = 0
        self.stopped = False

    def _remember(self, ident: str) -> None:
        if len(self._order) == self._order.maxlen:
            self._seen.discard(self._order[0])
        self._order.append(ident)
        self._seen.add(ident)

    def write_batch(self, values: list[Any]) -> None:
        for record in values:
            try:
                ident = self._identity(record)
                if ident in self._seen:
                    self.suppressed += 1
                    continue
                value = self._encode(record)
                key = self._key(record)
            except Exception as exc:
                self.skipped += 1
                log.error("not written to %s: %s: %r", self._topic, exc, record)
                continue
            self._writer.send(self._topic, value, key=key)
            self._remember(ident)

    def snapshot(self) -> None:
        checkpoint_flush(self._writer, self._topic, self)

    def close(self) -> None:
        if not self.stopped:
            checkpoint_flush(self._writer, self._topic, self)


class DedupKafkaRecordSink(FixedPartitionedSink[Any, None]):
    """Like `sinks.bytewax_sinks.KafkaRecordSink`, for records with a deterministic identity
    (alerts: `alert_id`): a record whose identity is already among the topic's last
    `remember` records per partition (read when the partition is built, so after a restart or
    a replay too), or was sent by this partition, is not sent again. A replay over the same
    input therefore adds nothing to the topic, as long as what it repeats is that recent.
    `read_identity` gets the identity back from a stored value (the codec's decode);
    `deadline_s` bounds a broker outage as for `sinks.bytewax_sinks.KafkaRecordSink`."""

    def __init__(self, conf: dict[str, Any], topic: str, *, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], identity: Callable[[Any], str],
                 read_identity: Callable[[bytes], str | None],
                 remember: int = 100_000, deadline_s: float | None = None) -> None:
        self._conf = conf
        self._deadline_s = deadline_s
        self._topic = topic
        self._encode = encode
        self._key = key
        self._identity = identity
        self._read_identity = read_identity
        self._remember = remember

    def list_parts(self) -> list[str]:
        return [self._topic]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> _DedupKafkaPartition:
        seen = recent_keys(self._conf, self._topic, self._read_identity, self._remember)
        return _DedupKafkaPartition(KafkaWriter.for_deadline(self._conf, self._deadline_s),
                                    self._topic, encode=self._encode,
                                    key=self._key, identity=self._identity, seen=seen,
                                    remember=self._remember)
