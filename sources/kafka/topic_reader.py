"""Plain Kafka reading for batch work and tests: read a topic from the beginning.

The flows read Kafka through Bytewax's connector; this is for jobs (alert subscriptions,
status) and for tests that check what landed on a topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from tapeflow.errors import StoreError

_RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """(low, high) offsets; retries while a just-created partition's leader settles."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=max(1.0, timeout_s / 10))
            return int(low), int(high)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            if code not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def end_offsets(conf: dict[str, Any], topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The next offset to be written on each partition of `topic` (its high watermarks)."""
    consumer = Consumer({**conf, "group.id": f"tapeflow-reader-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        return {p: _watermarks(consumer, TopicPartition(topic, p), timeout_s)[1]
                for p in sorted(meta.topics[topic].partitions)}
    finally:
        consumer.close()


def read_all(conf: dict[str, Any], topic: str, *, timeout_s: float = 30.0,
             expect: int | None = None, start: dict[int, int] | None = None) -> list[Message]:
    """Every message on `topic` now, across partitions, ordered by (partition, offset).

    Reads from `start` offsets (default: the beginning) and stops when each partition is read
    to the end it had when the call began (or when `expect` messages arrived), or raises
    TimeoutError after `timeout_s`.
    """
    start = start or {}
    consumer = Consumer({**conf, "group.id": f"tapeflow-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        parts = sorted(meta.topics[topic].partitions)
        ends = {}
        for p in parts:
            low, high = _watermarks(consumer, TopicPartition(topic, p), timeout_s)
            if high > max(low, start.get(p, 0)):
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in parts])
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        done = {p: False for p in ends}

        def finished() -> bool:
            return len(out) >= expect if expect is not None else all(done.values())

        while not finished():
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} messages from {topic}, wanted more")
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(msg.error()))
                out.append(msg)
                p = msg.partition()
                if p in ends and msg.offset() + 1 >= ends[p]:
                    done[p] = True
        out.sort(key=lambda m: (m.partition(), m.offset()))
        return out
    finally:
        consumer.close()


def follow(conf: dict[str, Any], topics: list[str], group_id: str,
           *, from_beginning: bool, poll_s: float = 0.5) -> Iterator[Message | None]:
    """Yield messages as they arrive (None on an idle poll), committing as we go."""
    consumer = Consumer({**conf, "group.id": group_id, "enable.auto.commit": True,
                         "auto.offset.reset": "earliest" if from_beginning else "latest"})
    consumer.subscribe(topics)
    try:
        while True:
            msg = consumer.poll(poll_s)
            if msg is None:
                yield None
            elif msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(msg.error()))
            else:
                yield msg
    finally:
        consumer.close()


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float = 30.0
               ) -> tuple[int, int]:
    """(low, high) offsets of one partition, retrying while a new partition's leader settles."""
    return _watermarks(consumer, tp, timeout_s)


def recent_identities(conf: dict[str, Any], topic: str, key_of: Callable[[bytes], str | None],
                      per_partition: int, *, timeout_s: float = 30.0,
                      group: str | None = None) -> list[str]:
    """The identities (`key_of(value)`) of the last `per_partition` records of each partition
    of `topic`, oldest first; values `key_of` cannot read are skipped (a `StoreError` from it,
    such as a schema registry that never answered, is raised: no value is to blame). `group`:
    a consumer group the principal may describe (nothing is committed to it; librdkafka looks
    up the coordinator of any group it is given), default a fresh throw-away one."""
    consumer = Consumer({**conf, "group.id": group or f"tapeflow-dedup-{uuid.uuid4().hex}",
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
            except StoreError:
                raise  # a service key_of needs (the schema registry) is away: not the value's
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
