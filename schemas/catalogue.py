"""Where schema ids come from: the repository's fixed catalogue, or a schema registry.

Both give the same two answers the codec needs: the id to stamp on a record we write (by
subject), and the writer schema behind an id we read. Parsed schemas are cached per id, so a
registry is asked about an id once per process, not once per message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

SCHEMA_DIR = Path(__file__).parent
CATALOGUE_FILE = SCHEMA_DIR / "catalogue.json"

TOPIC_TRADES = "md.trades"
TOPIC_QUOTES = "md.quotes"
TOPIC_EXECUTIONS = "oms.executions"
TOPIC_ALERTS = "risk.alerts"
TOPIC_DLQ = "tapeflow.dlq"
TOPIC_MARKS = "md.marks"
"""Marks for the trading flow: the last clean trade per symbol, throttled, as a `Trade` record
(key: symbol). Written by the market flow; see docs/flows.md."""

RECORD_SUBJECTS = {
    "Trade": f"{TOPIC_TRADES}-value",
    "Quote": f"{TOPIC_QUOTES}-value",
    "ExecutionReport": f"{TOPIC_EXECUTIONS}-value",
    "RiskAlert": f"{TOPIC_ALERTS}-value",
    "DeadLetter": f"{TOPIC_DLQ}-value",
}
"""Record name -> registry subject (TopicNameStrategy: '<topic>-value')."""


class UnknownSchemaError(LookupError):
    """An id or subject the catalogue does not know."""


class Catalogue(Protocol):
    def id_for(self, subject: str) -> int: ...

    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


def load_avsc(relative: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / relative).read_text())
    return loaded


def current_schema(record_name: str) -> dict[str, Any]:
    """The schema this version of Tapeflow reads and writes for a record (the reader schema)."""
    return load_avsc(f"avro/{record_name}.avsc")


@dataclass
class LocalCatalogue:
    """Fixed ids kept in `schemas/catalogue.json`: no registry needed to run."""

    _by_id: dict[int, dict[str, Any]] = field(default_factory=dict)
    _by_subject: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = CATALOGUE_FILE) -> LocalCatalogue:
        doc = json.loads(path.read_text())
        cat = cls()
        for entry in doc["schemas"]:
            cat._by_id[int(entry["id"])] = load_avsc(entry["file"])
            # The highest id of a subject is its current version.
            cat._by_subject[entry["subject"]] = max(
                int(entry["id"]), cat._by_subject.get(entry["subject"], 0)
            )
        return cat

    def id_for(self, subject: str) -> int:
        try:
            return self._by_subject[subject]
        except KeyError:
            raise UnknownSchemaError(f"no schema for subject {subject!r}") from None

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaError(f"unknown schema id {schema_id}") from None


class RegistryCatalogue:
    """A Confluent-compatible schema registry, through confluent-kafka's client.

    `client` is a `SchemaRegistryClient`; tests pass one made with
    `SchemaRegistryClient.new_client({"url": "mock://..."})` and share it between the producer
    and the consumer side, because each mock instance has its own store.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_url(cls, url: str, extra: dict[str, str] | None = None) -> RegistryCatalogue:
        conf = {"url": url, **(extra or {})}
        return cls(SchemaRegistryClient.new_client(conf))

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        schema_id = int(self._client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))
        self._ids[subject] = schema_id
        self._schemas[schema_id] = schema
        return schema_id

    def register_current(self) -> dict[str, int]:
        """Register this version's schemas under their subjects; returns subject -> id."""
        return {
            subject: self.register(subject, current_schema(name))
            for name, subject in RECORD_SUBJECTS.items()
        }

    def id_for(self, subject: str) -> int:
        if subject not in self._ids:
            try:
                latest = self._client.get_latest_version(subject)
            except Exception as exc:
                raise UnknownSchemaError(f"no schema for subject {subject!r}: {exc}") from None
            self._ids[subject] = int(latest.schema_id)
        return self._ids[subject]

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._schemas:
            try:
                schema = self._client.get_schema(schema_id)
            except Exception as exc:
                raise UnknownSchemaError(f"unknown schema id {schema_id}: {exc}") from None
            self._schemas[schema_id] = json.loads(schema.schema_str)
        return self._schemas[schema_id]
