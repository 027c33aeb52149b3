"""Bytewax sinks of Kafka topics: core records through a batched producer, flushed at checkpoints.

`KafkaRecordSink` writes every record; `DedupKafkaRecordSink` writes records with a
deterministic identity (alerts) once: it is handed the identities of the topic's recent records
when its partition is built (the flow composes that read, `sources.kafka.topic_reader`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.kafka.producer import DeliveryError, KafkaWriter

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
    """Like `KafkaRecordSink`, for records with a deterministic identity
    (alerts: `alert_id`): a record whose identity is already among the topic's last
    `remember` records per partition (read when the partition is built, so after a restart or
    a replay too), or was sent by this partition, is not sent again. A replay over the same
    input therefore adds nothing to the topic, as long as what it repeats is that recent.
    `recent(n)` returns the identities of the last n records of each partition of the topic,
    oldest first (`sources.kafka.topic_reader.recent_identities`);
    `deadline_s` bounds a broker outage as for `KafkaRecordSink`."""

    def __init__(self, conf: dict[str, Any], topic: str, *, encode: Callable[[Any], bytes],
                 key: Callable[[Any], str | None], identity: Callable[[Any], str],
                 recent: Callable[[int], list[str]],
                 remember: int = 100_000, deadline_s: float | None = None) -> None:
        self._conf = conf
        self._deadline_s = deadline_s
        self._topic = topic
        self._encode = encode
        self._key = key
        self._identity = identity
        self._recent = recent
        self._remember = remember

    def list_parts(self) -> list[str]:
        return [self._topic]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> _DedupKafkaPartition:
        seen = self._recent(self._remember)
        return _DedupKafkaPartition(KafkaWriter.for_deadline(self._conf, self._deadline_s),
                                    self._topic, encode=self._encode,
                                    key=self._key, identity=self._identity, seen=seen,
                                    remember=self._remember)
