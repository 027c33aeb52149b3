"""Bytewax sinks of Kafka topics: core records through a batched producer, flushed at checkpoints.

`KafkaRecordSink` writes every record; `DedupKafkaRecordSink` writes records with a
deterministic identity (alerts) once per topic: to its topic and, where the record has one, a
copy topic (an alert's desk topic), each deduplicated against the identities of that topic's
recent records, read when the partition is built (the flow composes that read,
`sources.kafka.topic_reader`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.kafka.producer import DeliveryError, KafkaWriter
from tapeflow.errors import StoreError

log = logging.getLogger("tapeflow.sinks.kafka")


class _KafkaPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, writer: KafkaWriter, topic: str, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], batched: bool = False) -> None:
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self._key = key
        self._batched = batched
        self.skipped = 0
        self.stopped = False

    def write_batch(self, values: list[Any]) -> None:
        records = [r for batch in values for r in batch] if self._batched else values
        for record in records:
            try:
                value = self._encode(record)
                key = self._key(record)
            except StoreError as exc:  # the schema registry: not the record's fault
                stop_on_registry(self._topic, self, exc)
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


def stop_on_registry(topic: str, partition: _Stoppable, exc: StoreError) -> NoReturn:
    """A record could not be encoded because the schema registry never answered or refused
    us: skipping it would lose a valid record, so the flow stops (one line, then the raise)."""
    partition.stopped = True
    log.error("Kafka write to %s failed, the flow stops (a restart with recovery replays): "
              "%s", topic, exc)
    raise exc


class KafkaRecordSink(FixedPartitionedSink[Any, None]):
    """Core records, encoded by `encode` (the codec), to one topic through a batched producer
    (`sinks.kafka.producer.KafkaWriter`: librdkafka batches, flushed at each checkpoint instead
    of after every Bytewax batch as the stock KafkaSink does).

    `deadline_s`: how long a record may wait for the broker (librdkafka `message.timeout.ms`)
    and a checkpoint's flush may block, so a broker outage shorter than that only delays the
    flow (docs/faults.md); None: librdkafka's 5 min and a 60 s flush. `batched`: each item's
    value is a list of records (a batch of the market flow), written in order."""

    def __init__(self, conf: dict[str, Any], topic: str, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], *, deadline_s: float | None = None,
                 batched: bool = False) -> None:
        self._conf = conf
        self._deadline_s = deadline_s
        self._batched = batched
        self._topic = topic
        self._encode = encode
        self._key = key

    def list_parts(self) -> list[str]:
        return [self._topic]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _KafkaPartition:
        return _KafkaPartition(KafkaWriter.for_deadline(self._conf, self._deadline_s),
                               self._topic, self._encode, self._key, self._batched)


class _Recent:
    """The identities recently written to one topic: the last `remember`, as a set."""

    def __init__(self, seen: list[str], remember: int) -> None:
        self.order: deque[str] = deque(seen[-remember:], maxlen=remember)
        self.seen = set(self.order)

    def add(self, ident: str) -> None:
        if len(self.order) == self.order.maxlen:
            self.seen.discard(self.order[0])
        self.order.append(ident)
        self.seen.add(ident)


class _DedupKafkaPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, writer: KafkaWriter, topic: str, *, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], identity: Callable[[Any], str],
                 recent: dict[str, _Recent],
                 copy_to: Callable[[Any], str | None] | None = None) -> None:
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self._key = key
        self._identity = identity
        self._recent = recent
        self._copy_to = copy_to
        self.skipped = 0
        self.suppressed = 0
        self.stopped = False

    def _targets(self, record: Any, ident: str) -> list[str]:
        topics = [self._topic]
        copy = self._copy_to(record) if self._copy_to is not None else None
        if copy is not None and copy in self._recent:
            topics.append(copy)
        return [t for t in topics if ident not in self._recent[t].seen]

    def write_batch(self, values: list[Any]) -> None:
        for record in values:
            try:
                ident = self._identity(record)
                targets = self._targets(record, ident)
                if not targets:
                    self.suppressed += 1
                    continue
                value = self._encode(record)
                key = self._key(record)
            except StoreError as exc:  # the schema registry: not the record's fault
                stop_on_registry(self._topic, self, exc)
            except Exception as exc:
                self.skipped += 1
                log.error("not written to %s: %s: %r", self._topic, exc, record)
                continue
            for topic in targets:
                self._writer.send(topic, value, key=key)
                self._recent[topic].add(ident)

    def snapshot(self) -> None:
        checkpoint_flush(self._writer, self._topic, self)

    def close(self) -> None:
        if not self.stopped:
            checkpoint_flush(self._writer, self._topic, self)


class DedupKafkaRecordSink(FixedPartitionedSink[Any, None]):
    """Like `KafkaRecordSink`, for records with a deterministic identity
    (alerts: `alert_id`): a record whose identity is already among a topic's last
    `remember` records per partition (read when the partition is built, so after a restart or
    a replay too), or was sent there by this partition, is not sent there again. A replay
    over the same input therefore adds nothing to the topics, as long as what it repeats is
    that recent.

    `copy_to(record)`: a second topic the record is also written to (an alert's desk topic;
    None: none), one of `copy_topics`. Each topic is deduplicated on its own, so a crash
    between the two writes is repaired by the replay: the copy that is missing is written.
    `recent(topic, n)` returns the identities of the last n records of each partition of a
    topic, oldest first (`sources.kafka.topic_reader.recent_identities`); `deadline_s` bounds
    a broker outage as for `KafkaRecordSink`; `linger_ms` is how long the producer may hold a
    record to fill a batch (librdkafka `linger.ms`; alerts: a few ms, so an alert is on the
    topic soon after the step that raised it returned).

    Recovery: an alert is sent as soon as its step returns, so after a crash the replay from
    the last snapshot raises again alerts that are already on the topic; the identities read
    at start cover them (as long as they are among the last `remember` per partition). An
    alert the crashed process queued but the broker never took is not on the topic, and the
    replay sends it: at least once, never lost."""

    def __init__(self, conf: dict[str, Any], topic: str, *, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], identity: Callable[[Any], str],
                 recent: Callable[[str, int], list[str]],
                 copy_to: Callable[[Any], str | None] | None = None,
                 copy_topics: Sequence[str] = (),
                 remember: int = 100_000, deadline_s: float | None = None,
                 linger_ms: int | None = None) -> None:
        self._linger = {} if linger_ms is None else {"linger.ms": linger_ms}
        self._conf = conf
        self._deadline_s = deadline_s
        self._topic = topic
        self._encode = encode
        self._key = key
        self._identity = identity
        self._recent = recent
        self._copy_to = copy_to
        self._copy_topics = tuple(copy_topics)
        self._remember = remember

    def list_parts(self) -> list[str]:
        return [self._topic]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> _DedupKafkaPartition:
        recent = {topic: _Recent(self._recent(topic, self._remember), self._remember)
                  for topic in (self._topic, *self._copy_topics)}
        writer = KafkaWriter.for_deadline(self._conf, self._deadline_s, **self._linger)
        return _DedupKafkaPartition(writer, self._topic, encode=self._encode, key=self._key,
                                    identity=self._identity, recent=recent,
                                    copy_to=self._copy_to)
