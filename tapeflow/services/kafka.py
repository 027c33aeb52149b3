"""Kafka plumbing shared by every component: the probe, topic metadata, topic creation, lag.

Producers live with the sinks (`sinks.kafka`) and consumers with the sources (`sources.kafka`);
what is neither, the admin side of the cluster, is here, so there is one place that knows how
long to wait for a broker and how to say that it did not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tapeflow.errors import StoreUnavailableError, UserError

PROBE_LOG = logging.getLogger("tapeflow.kafka.probe")
PROBE_LOG.setLevel(logging.CRITICAL)  # "connection refused" is the answer we ask for, not news


class TopicError(UserError):
    """A topic is missing or unusable; the message says which and what to run."""


def admin_client(conf: Mapping[str, Any], *, quiet: bool = False,
                 timeout_s: float | None = None) -> AdminClient:
    """An admin client over `conf` (`Settings.kafka_config()`); `quiet` sends librdkafka's
    connection chatter to a muted logger (a probe expects refusals)."""
    extra: dict[str, Any] = {}
    if quiet:
        extra["logger"] = PROBE_LOG
    if timeout_s is not None:
        extra["socket.timeout.ms"] = max(1, int(timeout_s * 1000))
    return AdminClient({**conf, **extra})


def broker_answers(conf: Mapping[str, Any], timeout_s: float = 2.0) -> bool:
    """True when a broker answers a metadata request within `timeout_s`."""
    admin = admin_client(conf, quiet=True, timeout_s=min(timeout_s, 1.0))
    try:
        return bool(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException:
        return False


def partition_counts(conf: Mapping[str, Any], topics: Iterable[str], *,
                     timeout_s: float = 10.0, bootstrap: str = "") -> dict[str, int]:
    """The partition count of each topic; raises when the broker does not answer in time
    (Bytewax's Kafka source would wait forever) or a topic is missing or unusable."""
    admin = admin_client(conf)
    where = bootstrap or str(conf.get("bootstrap.servers", ""))
    counts: dict[str, int] = {}
    for topic in topics:
        try:
            meta = admin.list_topics(topic, timeout=timeout_s)
        except Exception as exc:
            raise StoreUnavailableError(
                f"Kafka at {where} did not answer within {timeout_s} s: {exc}") from None
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None and found.error is not None else "no partitions"
            raise TopicError(f"topic {topic} is not usable ({why}); run `tapeflow init`")
        counts[topic] = len(found.partitions)
    return counts


def create_topics(conf: Mapping[str, Any], topics: Iterable[str], partitions: int,
                  timeout_s: float = 30.0) -> tuple[list[str], dict[str, int]]:
    """Create the missing `topics` with `partitions` each and wait until they have leaders;
    existing ones are left as they are. Returns (created, {existing: partition count})."""
    admin = admin_client(conf)
    meta = admin.list_topics(timeout=timeout_s)
    wanted = list(topics)
    existing = {t: len(meta.topics[t].partitions) for t in wanted if t in meta.topics}
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=1)
               for t in wanted if t not in existing]
    created = []
    if missing:
        for topic, future in admin.create_topics(missing, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                created.append(topic)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
                existing[topic] = partitions
    _wait_for_leaders(admin, created, timeout_s)
    return created, existing


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    """Return once every partition of `topics` has a leader: a new topic is not usable before."""
    deadline = time.monotonic() + timeout_s
    while topics:
        meta = admin.list_topics(timeout=timeout_s)
        ready = all(
            t in meta.topics and meta.topics[t].error is None
            and all(p.leader >= 0 for p in meta.topics[t].partitions.values())
            for t in topics
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {', '.join(topics)} have no partition leaders yet")
        time.sleep(0.1)


def group_lags(conf: Mapping[str, Any], groups: Iterable[str], topics: Mapping[str, int],
               timeout_s: float) -> list[tuple[str, str, int, int]]:
    """(group, topic, messages behind the end, partitions committed) for every group and topic
    where the group has committed offsets; each partition's end offset is asked once."""
    out: list[tuple[str, str, int, int]] = []
    ends: dict[tuple[str, int], int] = {}
    for group in groups:
        consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
        try:
            for topic, count in topics.items():
                parts = [TopicPartition(topic, p) for p in range(count)]
                committed = [tp for tp in consumer.committed(parts, timeout=timeout_s)
                             if tp.offset >= 0]
                if not committed:
                    continue
                lag = 0
                for tp in committed:
                    where = (tp.topic, tp.partition)
                    if where not in ends:
                        ends[where] = consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
                    lag += max(0, ends[where] - tp.offset)
                out.append((group, topic, lag, len(committed)))
        finally:
            consumer.close()
    return out


def consumer_groups(conf: Mapping[str, Any], prefix: str, timeout_s: float) -> list[str] | None:
    """The consumer groups whose id starts with `prefix`, sorted; None when the broker cannot
    list them (an old broker, or no permission to describe groups)."""
    admin = admin_client(conf)  # kept alive until the answer: a freed client cancels it
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout_s)
    except Exception:
        return None
    if listed.errors and not listed.valid:
        return None
    return sorted(g.group_id for g in listed.valid if g.group_id.startswith(prefix))
