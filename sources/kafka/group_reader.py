"""A committing Kafka reader for one subscriber: every partition of its topics, one group.

What it is for: `jobs.alerts` (the alert subscription). It differs from `topic_reader.read_all`
(a throw-away group, nothing committed) and from `topic_reader.follow` (auto-commit, which
commits what was *fetched*, not what was *handled*, so a crash loses what was fetched but not
yet written). Here the caller says when a message is handled (`done`), and only handled
positions are committed, so a restart with the same group resumes exactly after the last
handled message.

Why `assign` and not `subscribe`: a subscriber wants every alert of the topic, not the share
of it a group rebalance would give one member; assigning all partitions explicitly also lets
the start position be chosen per partition (committed, beginning, end, or a time) before the
first fetch, with no rebalance callback. The group id is then used for commits only, so one
group should be read by one process at a time (docs/alerts.md).

Start positions resolve to concrete offsets at `open`; a group with no commit on a partition
starts at its end (only new messages), as Kafka's console consumer does. Several topics (a
subscriber's desk topics) are read as one: every partition of each.

A topic the broker will not let this principal read is `TopicAccessError` at `open`, before
anything is fetched: the broker enforces who reads what, and the subscriber says so in one
line rather than waiting on a topic it will never see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from sources.kafka.topic_reader import watermarks

log = logging.getLogger("tapeflow.kafka.group")

StartKind = Literal["committed", "beginning", "end", "time"]
Part = tuple[str, int]
"""(topic, partition)."""


class TopicAccessError(PermissionError):
    """The broker refuses this principal a topic or the group (an ACL it lacks)."""


@dataclass(frozen=True)
class StartAt:
    """Where reading starts on every partition. `ts_ms` (Kafka timestamp, ms) for "time"."""

    kind: StartKind = "committed"
    ts_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.kind == "time") != (self.ts_ms is not None):
            raise ValueError("a 'time' start needs ts_ms, and only it")


FROM_COMMITTED = StartAt()


class GroupReader:
    """Reads `topics` as consumer group `group`; commits only what the caller marked done.

    `messages()` yields records in fetch order (per partition in offset order). Without
    `follow` it stops once every partition is read to the end it had at `open`; with it, it
    waits for more. Positions of records marked `done` are committed by `commit()`
    (synchronously: when it returns, the broker has them).
    """

    def __init__(self, conf: dict[str, Any], topics: Sequence[str], group: str, *,
                 start: StartAt = FROM_COMMITTED, follow: bool = False, poll_s: float = 0.5,
                 idle_commit_s: float = 5.0, timeout_s: float = 30.0) -> None:
        self.topics = list(topics)
        self.group = group
        self._start = start
        self._follow = follow
        self._poll_s = poll_s
        self._idle_commit_s = idle_commit_s
        self._timeout_s = timeout_s
        self._consumer = Consumer({
            **conf, "group.id": group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "latest",
        })
        self._ends: dict[Part, int] = {}
        self._read: dict[Part, int] = {}
        self._done: dict[Part, int] = {}
        self._committed: dict[Part, int] = {}
        self.starts: dict[Part, int] = {}
        """(topic, partition) -> the offset reading started at (after `open`)."""

    def _partitions(self, topic: str) -> list[Part]:
        meta = self._consumer.list_topics(topic, timeout=self._timeout_s)
        found = meta.topics.get(topic)
        err = found.error if found is not None else None
        if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise TopicAccessError(f"READ on topic {topic}")
        if found is None or err is not None or not found.partitions:
            raise LookupError(f"topic {topic} is not readable ({err or 'missing'}); run "
                              "`tapeflow init`")
        return [(topic, p) for p in sorted(found.partitions)]

    def open(self) -> GroupReader:
        """Resolve the start offsets and assign every partition of the topics."""
        parts = [part for topic in self.topics for part in self._partitions(topic)]
        bounds = {part: watermarks(self._consumer, TopicPartition(*part), self._timeout_s)
                  for part in parts}
        self.starts = self._resolve(parts, bounds)
        self._ends = {part: bounds[part][1] for part in parts}
        self._read = dict(self.starts)
        self._done = dict(self.starts)
        # The first commit writes every partition, moved or not: a partition left without a
        # commit would count as "new" on restart and start at its end, skipping its backlog.
        self._committed = {part: -1 for part in parts}
        self._consumer.assign([TopicPartition(topic, p, off)
                               for (topic, p), off in self.starts.items()])
        return self

    def _resolve(self, parts: list[Part], bounds: dict[Part, tuple[int, int]]) -> dict[Part, int]:
        kind = self._start.kind
        if kind == "beginning":
            return {part: bounds[part][0] for part in parts}
        if kind == "end":
            return {part: bounds[part][1] for part in parts}
        if kind == "time":
            assert self._start.ts_ms is not None
            asked = [TopicPartition(topic, p, self._start.ts_ms) for topic, p in parts]
            found = self._consumer.offsets_for_times(asked, timeout=self._timeout_s)
            # -1: no record at or after that time on the partition, so start at its end.
            return {(tp.topic, tp.partition): bounds[tp.topic, tp.partition][1]
                    if tp.offset < 0 else max(tp.offset, bounds[tp.topic, tp.partition][0])
                    for tp in found}
        try:
            committed = self._consumer.committed([TopicPartition(*part) for part in parts],
                                                 timeout=self._timeout_s)
        except KafkaException as exc:
            if _refused(exc):
                raise TopicAccessError(f"READ on group {self.group}") from None
            raise
        out = {}
        for tp in committed:
            low, high = bounds[tp.topic, tp.partition]
            # No commit yet: only new messages. A commit behind the retention horizon: the
            # oldest message still held (the rest is gone; nothing better can be done).
            out[tp.topic, tp.partition] = high if tp.offset == OFFSET_INVALID else min(
                max(tp.offset, low), high)
        return out

    def _at_end(self) -> bool:
        if not self._ends:
            return True
        positions = self._consumer.position([TopicPartition(*part) for part in self._ends])
        for tp in positions:
            part = (tp.topic, tp.partition)
            if max(self._read[part], tp.offset) < self._ends[part]:
                return False
        return True

    def messages(self) -> Iterator[Message]:
        """Records as they come; ends at the end of what the topics held at `open` unless
        following. A fatal consumer error raises `KafkaException`, a refused one
        `TopicAccessError`; others (a broker away for a while) are logged, and librdkafka
        retries them."""
        last_commit = time.monotonic()
        while self._follow or not self._at_end():
            batch = self._consumer.consume(500, timeout=self._poll_s)
            if not batch:
                if time.monotonic() - last_commit >= self._idle_commit_s:
                    self.commit()
                    last_commit = time.monotonic()
                continue
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.code() in _REFUSED:
                        raise TopicAccessError(f"READ on topic {msg.topic()}")
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("%s: %s (retrying)", msg.topic(), err)
                    continue
                topic, p, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is None or p is None or offset is None:
                    continue
                self._read[topic, p] = max(self._read.get((topic, p), 0), offset + 1)
                yield msg

    def done(self, msg: Message) -> None:
        """Mark `msg` handled: its position may be committed."""
        topic, p, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and p is not None and offset is not None:
            self._done[topic, p] = max(self._done.get((topic, p), 0), offset + 1)

    def commit(self) -> None:
        """Commit every handled position not committed yet (nothing to do: no request)."""
        changed = [TopicPartition(topic, p, off) for (topic, p), off in self._done.items()
                   if off > self._committed.get((topic, p), -1)]
        if not changed:
            return
        try:
            self._consumer.commit(offsets=changed, asynchronous=False)
        except KafkaException as exc:
            if _refused(exc):
                raise TopicAccessError(f"READ on group {self.group}") from None
            raise
        for tp in changed:
            self._committed[tp.topic, tp.partition] = tp.offset

    def close(self) -> None:
        """Leave the group's commits as they are and release the consumer."""
        self._consumer.close()


_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


def _refused(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and err.code() in _REFUSED
