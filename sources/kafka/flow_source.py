"""The flows' Kafka input: Bytewax's KafkaSource, errors as items, optionally one shard, and
optionally one item per poll of a partition (`MessageBatch`) instead of one per message.

Why shards: Bytewax's cross-process exchange of keyed items was measured at 8x slower than one
process (docs/design.md, "Scale"), so the scale-out that pays is independent single-process flows
that each read a disjoint set of partitions: shard i of K reads partition p when p % K == i,
on every topic it reads. Market data is keyed by symbol and executions by account, so a shard
holds every tick of its symbols and every report of its accounts. Topics that every shard must
see in full (the marks the trading flow values positions with) are listed in `shared_topics`.

Why batches (`batches=True`, the market flow): every item costs Bytewax a few microseconds
whatever it holds, and the market flow's work per tick is a few microseconds too, so the flow
moves one item per poll of a partition (up to `batch_size` messages) and decodes, judges and
writes whole batches. The messages of a batch are held as columns (keys, values, offsets,
receive times), never as one Python object per message. Bytewax's own partition still does
the reading, the offsets, the end-of-partition handling and the lag metric.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka import _KafkaSourcePartition as _BytewaxPartition
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from tapeflow.errors import TapeflowError
from tapeflow.services.kafka_access import flow_group
from tapeflow.settings import KafkaRole, Settings

log = logging.getLogger("tapeflow.kafka.input")
_STOP_POLL = timedelta(milliseconds=100)


class GracefulStopError(TapeflowError, RuntimeError):
    """Raised by a source partition to end the dataflow once a stop was asked for and a
    snapshot taken after it (see `request_stop`)."""


_STOP = threading.Event()


def request_stop() -> None:
    """Ask every Kafka source partition of this process to stop reading.

    Why not end of input: end of input runs each step's end-of-stream logic (the market step
    would release ticks still waiting for their quotes and judge them alone, which an
    uninterrupted run would not do). Instead each partition stops reading, lets one more
    epoch close, so the state and offsets of everything read are snapshotted and the sinks
    have flushed at that snapshot, and then raises `GracefulStopError` at the next snapshot.
    A restart resumes from the last snapshot as after any stop.
    """
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """The messages one poll of one partition returned, as columns, in offset order."""

    topic: str
    partition: int
    keys: list[bytes | None]
    values: list[bytes | None]
    offsets: list[int]
    recv_us: list[int | None]
    """The Kafka timestamp of each message in microseconds (None: the broker gave none)."""
    errors: list[KafkaError[Any, Any]] = field(default_factory=list)
    """Consumer errors met during the poll (not records: logged by the flow)."""

    def __len__(self) -> int:
        return len(self.values)


_PARTITION_EOF = ConfluentKafkaError._PARTITION_EOF
_NO_TIMESTAMP = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


class _BatchPartition(_BytewaxPartition):
    """Bytewax's Kafka partition (bytewax 0.21.1, pinned: its consumer, offset, end-of-input
    and lag metric), whose poll gives one `MessageBatch` instead of a message per item."""

    def next_batch(self) -> list[Any]:
        if self._eof:
            raise StopIteration()
        msgs = self._consumer.consume(self._batch_size, 0.001)
        if not msgs:
            return []
        if any(msg.error() is not None for msg in msgs):
            batch, last = self._with_errors(msgs)
        else:  # the common case, column by column (a list comprehension each: no appends)
            stamps = [msg.timestamp() for msg in msgs]
            offsets: list[int] = [msg.offset() for msg in msgs]  # type: ignore[misc]
            batch = MessageBatch(
                self._topic, self._part_idx, [msg.key() for msg in msgs],
                [msg.value() for msg in msgs], offsets,
                [ts[1] * 1000 if ts[0] != _NO_TIMESTAMP else None for ts in stamps])
            last = offsets[-1]
        if last is not None:  # resume after the last message read, as Bytewax does
            self._offset = last + 1
        return [batch] if len(batch) or batch.errors else []

    def _with_errors(self, msgs: list[Any]) -> tuple[MessageBatch, int | None]:
        """A poll holding errors: the end of the partition (stop after this batch, as
        Bytewax does) or consumer errors (kept in the batch, logged by the flow). Also the
        offset of the last message read (errors included), if any."""
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        offsets: list[int] = []
        recv: list[int | None] = []
        errors: list[KafkaError[Any, Any]] = []
        last = None
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.code() == _PARTITION_EOF:
                    self._eof = True  # raise StopIteration on the next poll
                    break
                errors.append(KafkaError(error, KafkaSourceMessage(
                    msg.key(), msg.value(), topic=msg.topic(), partition=msg.partition(),
                    offset=msg.offset())))
                last = msg.offset()
                continue
            keys.append(msg.key())
            values.append(msg.value())
            last = msg.offset()
            offsets.append(last)
            ts = msg.timestamp()
            recv.append(ts[1] * 1000 if ts[0] != _NO_TIMESTAMP else None)
        batch = MessageBatch(self._topic, self._part_idx, keys, values, offsets, recv, errors)
        return batch, last


class _ManagedPartition(StatefulSourcePartition[Any, int | None]):
    """Bytewax's Kafka partition, stoppable, whose offset can also be committed to a group.

    Why commit: Bytewax keeps the offsets only in its recovery snapshots, so lag tools
    (kafka-consumer-groups, Burrow, exporters) and `tapeflow status` see nothing. With a group,
    each snapshot's offset (the next one to read) is committed to it, asynchronously. The
    group is for monitoring only: recovery still resumes from the snapshots, and the commit
    may run one epoch ahead of the last durable snapshot.
    """

    def __init__(self, inner: Any, topic: str, partition: int, commit: bool) -> None:
        self._inner = inner
        self._topic = topic
        self._partition = partition
        self._commit = commit
        self._committed: int | None = None
        self._snapshots_since_stop = 0

    def next_batch(self) -> list[Any]:
        if _STOP.is_set():
            if self._snapshots_since_stop >= 2:
                raise GracefulStopError(f"stopped reading {self._topic}[{self._partition}] "
                                   "after a snapshot")
            return []
        batch: list[Any] = self._inner.next_batch()
        return batch

    def next_awake(self) -> datetime | None:
        if _STOP.is_set():
            return datetime.now(UTC) + _STOP_POLL
        awake: datetime | None = self._inner.next_awake()
        return awake

    def snapshot(self) -> int | None:
        offset: int | None = self._inner.snapshot()
        if _STOP.is_set():
            # The first snapshot after the stop may belong to an epoch that began before it;
            # the second closes an epoch in which nothing was read.
            self._snapshots_since_stop += 1
        if self._commit and offset is not None and offset >= 0 and offset != self._committed:
            try:
                # `_consumer` is the partition's own consumer (bytewax 0.21.1, pinned).
                self._inner._consumer.commit(
                    offsets=[TopicPartition(self._topic, self._partition, offset)],
                    asynchronous=True)
                self._committed = offset
            except KafkaException as exc:
                log.debug("offset commit for %s[%d] failed: %s", self._topic,
                          self._partition, exc)
        return offset

    def close(self) -> None:
        self._inner.close()


class ShardedKafkaSource(KafkaSource):
    """A KafkaSource that lists only the partitions of one shard."""

    def __init__(self, *args: Any, shard: tuple[int, int] | None = None,
                 shared_topics: frozenset[str] = frozenset(), commit_offsets: bool = False,
                 batches: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches = batches
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard[0]}/{shard[1]} is not i/K with 0 <= i < K")
        self._shard = shard
        self._shared_topics = shared_topics
        self._commit_offsets = commit_offsets

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
        part = super().build_part(step_id, for_part, resume_state)
        if self._batches:
            part.__class__ = _BatchPartition  # same state, batched polls
        partition, _, topic = for_part.partition("-")
        return _ManagedPartition(part, topic, int(partition), self._commit_offsets)

    def list_parts(self) -> list[str]:
        # Bytewax lists partitions with an AdminClient built from the same extra config; a
        # group.id there makes librdkafka warn on every start (an admin client is a producer
        # underneath), so it is left out for the listing (`_add_config`: bytewax 0.21.1).
        extra = self._add_config
        self._add_config = {k: v for k, v in extra.items() if k != "group.id"}
        try:
            parts: list[str] = super().list_parts()
        finally:
            self._add_config = extra
        if self._shard is None:
            return parts
        index, count = self._shard
        mine = []
        for part in parts:  # "<partition>-<topic>"
            partition, _, topic = part.partition("-")
            if topic in self._shared_topics or int(partition) % count == index:
                mine.append(part)
        return mine


def consumer_group(settings: Settings, flow: str, shard: tuple[int, int] | None) -> str:
    """The group a flow's offsets are committed to: one per flow and shard (shards share
    topics they all read in full, so they must not share a group)."""
    name = flow_group(settings, flow)
    return name if shard is None else f"{name}-shard{shard[0]}of{shard[1]}"


def kafka_source(settings: Settings, topics: list[str], *, role: KafkaRole, tail: bool = True,
                 batch_size: int = 1000, shard: tuple[int, int] | None = None,
                 shared_topics: frozenset[str] = frozenset(),
                 group: str | None = None, batches: bool = False) -> ShardedKafkaSource:
    """Bytewax's Kafka source over `topics` (full names), from the beginning, errors as items,
    as the principal of `role` (the market or trading flow).

    `tail=False` reads to the end each partition had when it was reached, then stops (batch).
    `group`: commit each snapshot's offsets to this consumer group, for lag monitoring.
    Without it the consumers still name the flow's own group, uncommitted: librdkafka asks
    for the coordinator of any group it is given, and a group the principal may not
    describe (Bytewax's default) would be an authorization error on every start.
    `batches`: one `MessageBatch` item per poll of a partition (consumer errors inside it)
    instead of one `KafkaSourceMessage` or `KafkaError` per message.
    """
    conf = settings.kafka_config(role)
    brokers = conf.pop("bootstrap.servers").split(",")
    conf["group.id"] = group if group is not None else flow_group(settings, role)
    return ShardedKafkaSource(
        brokers,
        topics,
        tail=tail,
        starting_offset=OFFSET_BEGINNING,
        add_config={k: str(v) for k, v in conf.items()},
        batch_size=batch_size,
        raise_on_errors=False,
        shard=shard,
        shared_topics=shared_topics,
        commit_offsets=group is not None,
        batches=batches,
    )
