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
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tapeflow.errors import UserError

SCHEMA_DIR = Path(__file__).parent
CATALOGUE_FILE = SCHEMA_DIR / "catalogue.json"

TOPIC_TRADES = "md.trades"
TOPIC_QUOTES = "md.quotes"
TOPIC_EXECUTIONS = "oms.executions"
TOPIC_ALERTS = "risk.alerts"
TOPIC_DLQ = "tapeflow.dlq"
TOPIC_CASH = "oms.cash"
"""Cash movements (deposits, withdrawals, fees) as `CashMovement` records, keyed by
account_id like oms.executions and read by the trading flow with it (docs/trading-core.md)."""
TOPIC_MARKS = "md.marks"
"""Marks for the trading flow: the last clean trade per symbol, throttled, as a `Trade` record
(key: symbol). Written by the market flow; see docs/flows.md."""

RECORD_SUBJECTS = {
    "Trade": f"{TOPIC_TRADES}-value",
    "Quote": f"{TOPIC_QUOTES}-value",
    "ExecutionReport": f"{TOPIC_EXECUTIONS}-value",
    "RiskAlert": f"{TOPIC_ALERTS}-value",
    "DeadLetter": f"{TOPIC_DLQ}-value",
    "CashMovement": f"{TOPIC_CASH}-value",
}
"""Record name -> registry subject (TopicNameStrategy: '<topic>-value')."""


class UnknownSchemaError(UserError, LookupError):
    """An id or subject the catalogue does not know."""


class Catalogue(Protocol):
    def id_for(self, subject: str, schema: dict[str, Any] | None = None) -> int:
        """The id to stamp on a record written with `schema` (None: the subject's latest)."""
        ...

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

    _subjects: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> LocalCatalogue:
        """The catalogue in `path` (default: the repository's); schema files are relative to it.

        A deployment without a registry can keep its own copy (`TAPEFLOW_SCHEMA_REGISTRY_CATALOGUE`)
        to add the versions its producers moved to, without a new Tapeflow release."""
        path = CATALOGUE_FILE if path is None else path
        doc = json.loads(path.read_text())
        cat = cls()
        for entry in doc["schemas"]:
            cat._by_id[int(entry["id"])] = json.loads((path.parent / entry["file"]).read_text())
            cat._subjects[int(entry["id"])] = entry["subject"]
            # The highest id of a subject is its current version.
            cat._by_subject[entry["subject"]] = max(
                int(entry["id"]), cat._by_subject.get(entry["subject"], 0)
            )
        return cat

    def id_for(self, subject: str, schema: dict[str, Any] | None = None) -> int:
        """The id of `schema` under `subject` (None: the subject's highest id).

        A writer must stamp the id of the schema it writes with, not the subject's latest:
        once the catalogue lists a producer's newer version, the latest id is that version's,
        and a body written with ours under its id would not decode."""
        if schema is not None:
            for schema_id, known in self._by_id.items():
                if self._subjects[schema_id] == subject and known == schema:
                    return schema_id
            raise UnknownSchemaError(f"the catalogue has no id for this version's {subject} "
                                     "schema (add it to catalogue.json with a new id)")
        try:
            return self._by_subject[subject]
        except KeyError:
            raise UnknownSchemaError(f"no schema for subject {subject!r}") from None

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaError(f"unknown schema id {schema_id}") from None

    def versions(self, subject: str) -> dict[int, dict[str, Any]]:
        """Every catalogued schema of a subject, by id (for the compatibility check)."""
        return {i: self._by_id[i] for i, s in sorted(self._subjects.items()) if s == subject}


class RegistryCatalogue:
    """A Confluent-compatible schema registry, through confluent-kafka's client.

    `client` is a `SchemaRegistryClient`; tests pass one made with
    `SchemaRegistryClient.new_client({"url": "mock://..."})` and share it between the producer
    and the consumer side, because each mock instance has its own store.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_url(cls, url: str, extra: dict[str, str] | None = None) -> RegistryCatalogue:
        conf = {"url": url, **(extra or {})}
        return cls(SchemaRegistryClient.new_client(conf))

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = json.dumps(schema)
        schema_id = int(self._client.register_schema(subject, Schema(text, "AVRO")))
        self._ids[(subject, text)] = schema_id
        self._schemas[schema_id] = schema
        return schema_id

    def register_current(self) -> dict[str, int]:
        """Register this version's schemas under their subjects; returns subject -> id."""
        return {
            subject: self.register(subject, current_schema(name))
            for name, subject in RECORD_SUBJECTS.items()
        }

    def id_for(self, subject: str, schema: dict[str, Any] | None = None) -> int:
        """The id of `schema` under `subject` (None: the subject's latest version), looked up
        once per process. See `LocalCatalogue.id_for` for why not always the latest."""
        key = (subject, "" if schema is None else json.dumps(schema))
        if key not in self._ids:
            try:
                if schema is None:
                    found = self._client.get_latest_version(subject)
                else:
                    found = self._client.lookup_schema(subject, Schema(key[1], "AVRO"))
            except Exception as exc:
                raise UnknownSchemaError(f"no schema for subject {subject!r}: {exc}") from None
            self._ids[key] = int(found.schema_id)
        return self._ids[key]

    def versions(self, subject: str) -> dict[int, dict[str, Any]]:
        """Every schema registered under a subject, by id (none when the subject is new)."""
        out: dict[int, dict[str, Any]] = {}
        try:
            versions = self._client.get_versions(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return out
            raise UnknownSchemaError(f"the schema registry refused to list {subject}: {exc}") \
                from None
        except Exception as exc:  # connection refused, DNS, TLS: say so in one line
            raise UnknownSchemaError(f"the schema registry did not answer: {exc}") from None
        for version in versions:
            registered = self._client.get_version(subject, version)
            out[int(registered.schema_id)] = json.loads(registered.schema.schema_str)
        return out

    def test_compatibility(self, subject: str, schema: dict[str, Any]) -> bool:
        """The registry's own verdict on `schema` for `subject`, at the subject's level (a
        subject with no version yet accepts anything)."""
        try:
            return bool(self._client.test_compatibility(subject,
                                                        Schema(json.dumps(schema), "AVRO")))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return True
            raise

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._schemas:
            try:
                schema = self._client.get_schema(schema_id)
            except Exception as exc:
                raise UnknownSchemaError(f"unknown schema id {schema_id}: {exc}") from None
            self._schemas[schema_id] = json.loads(schema.schema_str)
        return self._schemas[schema_id]
