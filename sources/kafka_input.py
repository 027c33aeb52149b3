"""The flows' Kafka input: Bytewax's KafkaSource, errors as items, optionally one shard.

Why shards: Bytewax's cross-process exchange of keyed items was measured at 8x slower than one
process (DESIGN.md, "Scale"), so the scale-out that pays is independent single-process flows
that each read a disjoint set of partitions: shard i of K reads partition p when p % K == i,
on every topic it reads. Market data is keyed by symbol and executions by account, so a shard
holds every tick of its symbols and every report of its accounts. Topics that every shard must
see in full (the marks the trading flow values positions with) are listed in `shared_topics`.
"""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaSource
from confluent_kafka import OFFSET_BEGINNING

from tapeflow.config import Settings


class ShardedKafkaSource(KafkaSource):
    """A KafkaSource that lists only the partitions of one shard."""

    def __init__(self, *args: Any, shard: tuple[int, int] | None = None,
                 shared_topics: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard[0]}/{shard[1]} is not i/K with 0 <= i < K")
        self._shard = shard
        self._shared_topics = shared_topics

    def list_parts(self) -> list[str]:
        parts: list[str] = super().list_parts()
        if self._shard is None:
            return parts
        index, count = self._shard
        mine = []
        for part in parts:  # "<partition>-<topic>"
            partition, _, topic = part.partition("-")
            if topic in self._shared_topics or int(partition) % count == index:
                mine.append(part)
        return mine


def kafka_source(settings: Settings, topics: list[str], *, tail: bool = True,
                 batch_size: int = 1000, shard: tuple[int, int] | None = None,
                 shared_topics: frozenset[str] = frozenset()) -> ShardedKafkaSource:
    """Bytewax's Kafka source over `topics` (full names), from the beginning, errors as items.

    `tail=False` reads to the end each partition had when it was reached, then stops (batch).
    """
    conf = settings.kafka_config()
    brokers = conf.pop("bootstrap.servers").split(",")
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
    )
