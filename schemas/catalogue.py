"""Where schema ids come from: the repository's fixed catalogue, or a schema registry.

Both give the same two answers the codec needs: the id to stamp on a record we write (by
subject), and the writer schema behind an id we read. Parsed schemas are cached per id, so a
registry is asked about an id once per process, not once per message.

A registry that does not answer is not a registry that says "no" (docs/bad-input.md). Only an
answer "not found" (HTTP 404 with a registry error code 404xx) makes an id unknown, and that
answer is cached like a found schema: the codec turns it into an `unknown_schema_id` dead
letter. A request that gets no answer (connection refused or reset, a timeout, a 5xx, 408 or
429) is tried again on the sinks' schedule (`tapeflow.services.retry.RetryPolicy`: backoff from
0.2 s to 10 s, until `sink_retry_deadline_s` after the first failure in a flow), one warning line
and one count of `tapeflow_schema_registry_retries_total` per retry; the caller blocks
meanwhile, so a flow reads nothing more and snapshots nothing past the record. Past the
deadline `RegistryUnavailableError` is raised, and any other answer (401, 403, a 404 that is
not the registry's) is `RegistryRefusedError`: neither is the record's fault, so the flows stop
with one error line instead of dead-lettering valid records, and a restart replays them.
Before, one unanswered lookup turned every not-yet-cached id into dead letters.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from prometheus_client import Counter
from tenacity import RetryCallState, RetryError

from tapeflow.errors import PermanentStoreError, StoreUnavailableError, UserError
from tapeflow.services.dsn import redact
from tapeflow.services.retry import RetryPolicy

log = logging.getLogger("tapeflow.schemas.registry")
T = TypeVar("T")

REGISTRY_RETRIES = Counter(
    "tapeflow_schema_registry_retries_total",
    "Schema registry requests that got no answer and were tried again, by operation.",
    ["operation"])
REGISTRY_TIMEOUT_S = 10.0
"""Default bound on one registry request (setting `schema_registry_timeout_s`)."""

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
TOPIC_CANDLES = "md.candles"
"""Closed and corrected candles (`Candle` records, key: symbol), as the market flow writes them
to ClickHouse: the live view and any other subscriber follow it (docs/live-view.md)."""
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
    "Candle": f"{TOPIC_CANDLES}-value",
}
"""Record name -> registry subject (TopicNameStrategy: '<topic>-value')."""


class UnknownSchemaError(UserError, LookupError):
    """An id or subject the catalogue does not know (a registry answered "not found")."""


class RegistryUnavailableError(StoreUnavailableError):
    """The registry gave no answer for as long as the retry policy allowed."""


class RegistryRefusedError(PermanentStoreError):
    """The registry answered with an error that says nothing about the schema (401, 403, a
    404 that is not the registry's own): the configuration is wrong, not the record."""


def answered_not_found(exc: BaseException) -> bool:
    """The registry itself said the schema or subject does not exist."""
    return (isinstance(exc, SchemaRegistryError) and exc.http_status_code == 404
            and (exc.error_code or 0) // 100 == 404)


def no_answer(exc: BaseException) -> bool:
    """Whether asking again may help: no answer at all (transport errors, timeouts), or an
    answer that means "not now" (5xx, 408 request timeout, 429 too many requests)."""
    if isinstance(exc, SchemaRegistryError):
        status = exc.http_status_code or 0
        return status >= 500 or status in (408, 429)
    return True


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
    and the consumer side, because each mock instance has its own store. `retry` is how long a
    lookup waits for a registry that does not answer (module docstring); `where` names the
    registry in log lines and errors.
    """

    def __init__(self, client: Any, *, retry: RetryPolicy | None = None, where: str = "",
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._retry = retry or RetryPolicy()
        self._where = where or "the schema registry"
        self._sleep = sleep
        self._clock = clock
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._missing: dict[int, str] = {}
        """Ids the registry answered "not found" for, with its message: asked once."""
        self.retries = 0

    @classmethod
    def from_url(cls, url: str, extra: dict[str, str] | None = None, *,
                 retry: RetryPolicy | None = None,
                 timeout_s: float = REGISTRY_TIMEOUT_S) -> RegistryCatalogue:
        """A catalogue on the registry at `url`. The client's own retries are off (ours follow
        `retry`), and one request may take `timeout_s`."""
        conf = {"url": url, "max.retries": 0, "timeout": timeout_s, **(extra or {})}
        return cls(SchemaRegistryClient.new_client(conf), retry=retry,
                   where=f"the schema registry at {redact(url)}")

    def _ask(self, what: str, operation: str, call: Callable[[], T]) -> T:
        """`call` under the retry policy; `RegistryUnavailableError` when it never answers.
        An answer that is not worth repeating (a 404, a 401) is raised as the client raised it.
        """
        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            REGISTRY_RETRIES.labels(operation).inc()
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s gave no answer to %s (attempt %d, %s): %s; next attempt in %.1f s",
                        self._where, what, state.attempt_number, self._retry.bound(),
                        _describe(exc), wait)

        retrying = self._retry.retrying(no_answer, before_sleep, self._sleep, self._clock)
        try:
            return retrying(call)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise RegistryUnavailableError(
                f"{self._where} gave no answer to {what} ({self._retry.bound()}): "
                f"{_describe(last)}") from last

    def _refused(self, what: str, exc: Exception) -> RegistryRefusedError:
        return RegistryRefusedError(f"{self._where} refused {what}: {_describe(exc)}")

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
            what = f"the id of {subject}"
            try:
                if schema is None:
                    found = self._ask(what, "id", lambda: self._client.get_latest_version(
                        subject))
                else:
                    found = self._ask(what, "id", lambda: self._client.lookup_schema(
                        subject, Schema(key[1], "AVRO")))
            except SchemaRegistryError as exc:
                if answered_not_found(exc):
                    raise UnknownSchemaError(f"no schema for subject {subject!r}: {exc}") \
                        from None
                raise self._refused(what, exc) from None
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
        """The writer schema of an id: asked once; "not found" is remembered too."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        if schema_id in self._missing:
            raise UnknownSchemaError(self._missing[schema_id])
        what = f"schema id {schema_id}"
        try:
            schema = self._ask(what, "schema", lambda: self._client.get_schema(schema_id))
        except SchemaRegistryError as exc:
            if answered_not_found(exc):
                self._missing[schema_id] = f"unknown schema id {schema_id}: {exc}"
                raise UnknownSchemaError(self._missing[schema_id]) from None
            raise self._refused(what, exc) from None
        self._schemas[schema_id] = json.loads(schema.schema_str)
        return self._schemas[schema_id]


def _describe(exc: BaseException | None) -> str:
    """Exception class and the first line of its message."""
    if exc is None:
        return "no exception"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
