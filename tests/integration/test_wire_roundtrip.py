"""Records -> Confluent-framed Avro -> the real Kafka broker -> consumed -> decoded: equal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from jobs.init import ALL_TOPICS, create_topics
from schemas.catalogue import RECORD_SUBJECTS, Catalogue, LocalCatalogue, RegistryCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from tapeflow.settings import Settings
from tests.support.records import edge_records

TOPIC_OF = {name: subject.removesuffix("-value") for name, subject in RECORD_SUBJECTS.items()}


def _key(record: Any) -> str:
    return getattr(record, "account_id", None) or getattr(record, "symbol", None) or "dlq"


def _round_trip(settings: Settings, catalogue: Catalogue) -> None:
    create_topics(settings)
    codec = Codec(catalogue)
    records = edge_records()
    writer = KafkaWriter(settings.kafka_config())
    for record in records:
        topic = settings.topic(TOPIC_OF[type(record).__name__])
        writer.send(topic, codec.encode(record), key=_key(record))
    writer.flush()
    assert writer.delivered == len(records)

    decoded: list[Any] = []
    for name, topic in TOPIC_OF.items():
        expected = [r for r in records if type(r).__name__ == name]
        messages = read_all(settings.kafka_config(), settings.topic(topic), expect=len(expected))
        got = [codec.decode(m.value(), expect=name) for m in messages]
        # Partitioning by key reorders across partitions; compare as multisets per type.
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        decoded += got
    assert len(decoded) == len(records)


def test_round_trip_with_the_local_catalogue(settings: Settings) -> None:
    _round_trip(settings, LocalCatalogue.load())


def test_round_trip_with_a_schema_registry(settings: Settings) -> None:
    """Registry mode: ids come from a Confluent-compatible registry (mock:// in tests).

    Producer and consumer share one client: each mock instance has its own store.
    """
    client = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})
    catalogue = RegistryCatalogue(client)
    ids = catalogue.register_current()
    assert len(set(ids.values())) == len(ids)
    _round_trip(settings, catalogue)


def test_a_consumer_with_a_fresh_registry_client_resolves_ids(settings: Settings) -> None:
    """The reader asks the registry for writer schemas by id; nothing is assumed locally."""
    client = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})
    writer_side = RegistryCatalogue(client)
    writer_side.register_current()
    reader_side = RegistryCatalogue(client)
    record = edge_records()[0]
    frame = Codec(writer_side).encode(record)
    assert Codec(reader_side).decode(frame) == record


@pytest.mark.parametrize("partitions", [1, 5])
def test_init_creates_topics_with_the_configured_partition_count(
    settings: Settings, partitions: int
) -> None:
    from confluent_kafka.admin import AdminClient

    local = settings.with_overrides(kafka_partitions=partitions)
    created, existing = create_topics(local)
    assert len(created) == len(ALL_TOPICS) and not existing
    meta = AdminClient(local.kafka_config()).list_topics(timeout=10)
    for topic in created:
        assert len(meta.topics[topic].partitions) == partitions
    again_created, again_existing = create_topics(local)
    assert again_created == [] and set(again_existing) == set(created)
