"""A batched Kafka producer: librdkafka batches and compresses, we flush only when asked.

The stock Bytewax KafkaSink flushes on every batch (docs/design.md); this one lets librdkafka fill
its batches (`linger.ms`) and flushes at the points where the caller needs durability (end of a
job, a checkpoint). Delivery failures are counted and raised at `flush`, never lost.

Broker outages: librdkafka keeps queued records and retries them until `message.timeout.ms`
(5 min by default), reconnecting by itself; `flush` waits up to `flush_timeout_s`. A flow's
sinks set both to the sink retry deadline (`for_deadline`), so an outage shorter than that only
delays the checkpoint that flushes (docs/faults.md). Idempotence (`enable.idempotence`) keeps
librdkafka's own retries from writing a record twice.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from tapeflow.errors import StoreError


class DeliveryError(StoreError, RuntimeError):
    """Some records were not acknowledged by the broker."""


DEFAULT_FLUSH_TIMEOUT_S = 60.0


class KafkaWriter:
    def __init__(self, conf: dict[str, Any], *, flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
                 **overrides: Any) -> None:
        self.flush_timeout_s = flush_timeout_s
        settings = {
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "acks": "all",
            "queue.buffering.max.messages": 500000,
            "logger": logging.getLogger("tapeflow.kafka.producer"),
            **conf,
            **overrides,
        }
        self._producer = Producer(settings)
        self.sent = 0
        self.delivered = 0
        self.failures: list[str] = []

    @classmethod
    def for_deadline(cls, conf: dict[str, Any], deadline_s: float | None,
                     **overrides: Any) -> KafkaWriter:
        """A writer whose records wait for the broker, and whose `flush` waits, `deadline_s`
        (None: librdkafka's default and `DEFAULT_FLUSH_TIMEOUT_S`); `overrides` are more
        librdkafka settings (`linger.ms`)."""
        if deadline_s is None:
            return cls(conf, **overrides)
        return cls(conf, flush_timeout_s=deadline_s,
                   **{"message.timeout.ms": max(1, int(deadline_s * 1000)), **overrides})

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failures.append(str(err))

    def send(self, topic: str, value: bytes, key: bytes | str | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> None:
        """Queue one record; waits for room when the local queue is full. `timestamp_ms`: the
        record's Kafka timestamp (default: now)."""
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery,
                                       **extra)
                break
            except BufferError:
                self._producer.poll(0.05)
        self.sent += 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued record is acknowledged (up to `timeout_s`, by default the
        writer's `flush_timeout_s`); raise if any was refused or is still waiting."""
        if timeout_s is None:
            timeout_s = self.flush_timeout_s
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} records still unacknowledged after {timeout_s} s")
        if self.failures:
            first = self.failures[0]
            raise DeliveryError(f"{len(self.failures)} records were refused; first: {first}")
