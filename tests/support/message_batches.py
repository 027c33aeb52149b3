"""Kafka messages as the batched market source gives them: `MessageBatch`es, one per poll of a
partition. Used by the tests that drive the market flow or its decoder without a broker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sources.kafka.flow_source import MessageBatch


class Message(NamedTuple):
    """One Kafka message, before batching."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    recv_us: int | None = 1_800_000_000_000_000


def batches(messages: Sequence[Message], size: int, errors: Sequence[Any] = ()
            ) -> list[MessageBatch]:
    """`messages` in order, cut into batches of at most `size` consecutive messages of one
    (topic, partition): what polls of each partition would return, interleaved as given.
    `errors` (consumer errors) ride on the first batch."""
    out: list[MessageBatch] = []
    run: list[Message] = []

    def close() -> None:
        if run:
            first = run[0]
            out.append(MessageBatch(first.topic, first.partition, [m.key for m in run],
                                    [m.value for m in run], [m.offset for m in run],
                                    [m.recv_us for m in run],
                                    list(errors) if not out else []))
            run.clear()

    for msg in messages:
        if run and ((msg.topic, msg.partition) != (run[0].topic, run[0].partition)
                    or len(run) >= size):
            close()
        run.append(msg)
    close()
    if not out and errors:
        out.append(MessageBatch("", -1, [], [], [], [], list(errors)))
    return out
