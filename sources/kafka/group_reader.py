"""A committing Kafka reader for one subscriber: every partition of one topic, one group.

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
starts at its end (only new messages), as Kafka's console consumer does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
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
    """Reads `topic` as consumer group `group`; commits only what the caller marked done.

    `messages()` yields records in fetch order (per partition in offset order). Without
    `follow` it stops once every partition is read to the end it had at `open`; with it, it
    waits for more. Positions of records marked `done` are committed by `commit()`
    (synchronously: when it returns, the broker has them).
    """

    def __init__(self, conf: dict[str, Any], topic: str, group: str, *,
                 start: StartAt = FROM_COMMITTED, follow: bool = False, poll_s: float = 0.5,
                 idle_commit_s: float = 5.0, timeout_s: float = 30.0) -> None:
        self.topic = topic
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
        self._ends: dict[int, int] = {}
        self._read: dict[int, int] = {}
        self._done: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        """Partition -> the offset reading started at (after `open`)."""

    def open(self) -> GroupReader:
        """Resolve the start offsets and assign every partition of the topic."""
        meta = self._consumer.list_topics(self.topic, timeout=self._timeout_s)
        found = meta.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None and found.error is not None else "missing"
            raise LookupError(f"topic {self.topic} is not readable ({why}); run `tapeflow init`")
        parts = sorted(found.partitions)
        bounds = {p: watermarks(self._consumer, TopicPartition(self.topic, p), self._timeout_s)
                  for p in parts}
        self.starts = self._resolve(parts, bounds)
        self._ends = {p: bounds[p][1] for p in parts}
        self._read = dict(self.starts)
        self._done = dict(self.starts)
        # The first commit writes every partition, moved or not: a partition left without a
        # commit would count as "new" on restart and start at its end, skipping its backlog.
        self._committed = {p: -1 for p in parts}
        self._consumer.assign([TopicPartition(self.topic, p, off)
                               for p, off in self.starts.items()])
        return self

    def _resolve(self, parts: list[int], bounds: dict[int, tuple[int, int]]) -> dict[int, int]:
        kind = self._start.kind
        tps = [TopicPartition(self.topic, p) for p in parts]
        if kind == "beginning":
            return {p: bounds[p][0] for p in parts}
        if kind == "end":
            return {p: bounds[p][1] for p in parts}
        if kind == "time":
            assert self._start.ts_ms is not None
            asked = [TopicPartition(self.topic, p, self._start.ts_ms) for p in parts]
            found = self._consumer.offsets_for_times(asked, timeout=self._timeout_s)
            # -1: no record at or after that time on the partition, so start at its end.
            return {tp.partition: bounds[tp.partition][1] if tp.offset < 0
                    else max(tp.offset, bounds[tp.partition][0]) for tp in found}
        committed = self._consumer.committed(tps, timeout=self._timeout_s)
        out = {}
        for tp in committed:
            low, high = bounds[tp.partition]
            # No commit yet: only new messages. A commit behind the retention horizon: the
            # oldest message still held (the rest is gone; nothing better can be done).
            out[tp.partition] = high if tp.offset == OFFSET_INVALID else min(
                max(tp.offset, low), high)
        return out

    def _at_end(self) -> bool:
        if not self._ends:
            return True
        positions = self._consumer.position(
            [TopicPartition(self.topic, p) for p in self._ends])
        for tp in positions:
            reached = max(self._read[tp.partition], tp.offset)
            if reached < self._ends[tp.partition]:
                return False
        return True

    def messages(self) -> Iterator[Message]:
        """Records as they come; ends at the end of what the topic held at `open` unless
        following. A fatal consumer error raises `KafkaException`; others (a broker away for a
        while) are logged, and librdkafka retries them."""
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
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("%s: %s (retrying)", self.topic, err)
                    continue
                p, offset = msg.partition(), msg.offset()
                if p is None or offset is None:
                    continue
                self._read[p] = max(self._read.get(p, 0), offset + 1)
                yield msg

    def done(self, msg: Message) -> None:
        """Mark `msg` handled: its position may be committed."""
        p, offset = msg.partition(), msg.offset()
        if p is not None and offset is not None:
            self._done[p] = max(self._done.get(p, 0), offset + 1)

    def commit(self) -> None:
        """Commit every handled position not committed yet (nothing to do: no request)."""
        changed = [TopicPartition(self.topic, p, off) for p, off in self._done.items()
                   if off > self._committed.get(p, -1)]
        if not changed:
            return
        self._consumer.commit(offsets=changed, asynchronous=False)
        for tp in changed:
            self._committed[tp.partition] = tp.offset

    def close(self) -> None:
        """Leave the group's commits as they are and release the consumer."""
        self._consumer.close()
