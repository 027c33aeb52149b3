"""Reading the dead-letter topic back: every letter with its place on the topic and its key.

For `tapeflow dlq list|replay` (`jobs.dlq`). The topic is read whole, from the beginning to the
end it has when reading starts, with a throw-away consumer group (nothing committed): a
dead-letter topic is small by nature, and a letter's place on it (partition, offset) is how a
user names it on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from sources.kafka.topic_reader import read_all
from tapeflow.core.models import DeadLetter


@dataclass(frozen=True)
class StoredLetter:
    """One dead letter as the topic holds it."""

    partition: int
    offset: int
    """Its place on the dead-letter topic."""
    key: str
    """The Kafka key it was written under: the original record's key ('' when none)."""
    letter: DeadLetter


@dataclass(frozen=True)
class DeadLetters:
    """What the dead-letter topic holds: the letters, and how many values were not letters."""

    letters: list[StoredLetter]
    undecodable: int


def read_dead_letters(conf: dict[str, Any], topic: str,
                      decode: Callable[[bytes], DeadLetter],
                      timeout_s: float = 30.0) -> DeadLetters:
    """Every letter on `topic` now, ordered by (partition, offset); `decode` is the codec's
    (`lambda raw: codec.decode(raw, expect="DeadLetter")`). A topic that does not exist holds
    no letters."""
    probe = Consumer({**conf, "group.id": "tapeflow-dlq-probe"})
    try:
        if topic not in probe.list_topics(timeout=timeout_s).topics:
            return DeadLetters([], 0)
    finally:
        probe.close()
    letters: list[StoredLetter] = []
    undecodable = 0
    for msg in read_all(conf, topic, timeout_s=timeout_s):
        try:
            letter = decode(msg.value() or b"")
        except Exception:
            undecodable += 1
            continue
        key = msg.key()
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")
        letters.append(StoredLetter(int(msg.partition() or 0), int(msg.offset() or 0), text,
                                    letter))
    return DeadLetters(letters, undecodable)
