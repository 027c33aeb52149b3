"""Rows a store refuses, as dead letters: the flow goes on, and the rows can be written later.

Why: one row a store refuses for good (Postgres refuses a NUL in text; a CHECK an operator
added; a value the driver cannot serialise) used to fail its whole batch; the sink kept the
batch and stopped the flow at the checkpoint, and the replay after every restart brought the
same row back, so the flow could never pass it. Now the sink isolates the refused rows
(`sinks.partition`) and hands them here: each becomes a `DeadLetter` on the dead-letter topic
with reason `store_refused`, the store's own reason in `detail`, and the refused rows in `raw`
(the JSON below), so `tapeflow dlq replay` can write them once the cause is fixed, through the
same idempotent statements as the sink. A record that cannot even be made into rows (a value
beyond its column's range, caught before any store sees it) becomes `unstorable_value`, with
the record's description in `detail` and no rows: no fix of the store can take it.

A store letter's `topic` names the store (`postgres`, `clickhouse`); partition and offset are
-1 (a row is not one input message: a candle sums many) and `ts` is the wall time it was made.

`raw` of a store letter, UTF-8 JSON (strings keep every character: NUL and lone surrogates are
escaped by JSON itself):

    {"store": "postgres", "rows": [{"table": "orders", "row": {"order_id": "O1", ...}}]}
    {"store": "clickhouse", "rows": [{"table": "trades", "values": ["AAA", ...]}]}

Postgres rows are column -> value objects, ClickHouse rows value arrays in the table's column
order. Values a JSON number or string cannot hold exactly are tagged: `{"decimal": "1.5"}`,
`{"timestamp_us": 1790000000000000}` (an aware UTC datetime in the row).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sinks.kafka.producer import KafkaWriter
from sinks.metrics import record_dead_letter
from tapeflow.core.models import DeadLetter

log = logging.getLogger("tapeflow.sinks.dead_letters")

STORE_REFUSED = "store_refused"
UNSTORABLE_VALUE = "unstorable_value"
STORES = ("postgres", "clickhouse")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Rows = Sequence[tuple[str, Any]]
"""(table, row) pairs: a row is a dict (Postgres) or a sequence of values (ClickHouse)."""


def _value_to_json(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"naive datetime {value!r}: its time zone is unknown")
        return {"timestamp_us": (value - _EPOCH) // timedelta(microseconds=1)}
    if isinstance(value, list | tuple):
        return [_value_to_json(v) for v in value]
    raise TypeError(f"no JSON form for a {type(value).__name__} in a row")


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"decimal"}:
            return Decimal(value["decimal"])
        if set(value) == {"timestamp_us"}:
            return _EPOCH + timedelta(microseconds=int(value["timestamp_us"]))
        raise ValueError(f"unknown tagged value {sorted(value)}")
    if isinstance(value, list):
        return [_value_from_json(v) for v in value]
    return value


def rows_to_json(store: str, rows: Rows) -> bytes:
    """The `raw` of a store letter (module docstring)."""
    out = []
    for table, row in rows:
        if isinstance(row, dict):
            out.append({"table": table,
                        "row": {col: _value_to_json(v) for col, v in row.items()}})
        else:
            out.append({"table": table, "values": [_value_to_json(v) for v in row]})
    return json.dumps({"store": store, "rows": out}, ensure_ascii=True,
                      separators=(",", ":")).encode("ascii")


def rows_from_json(raw: bytes) -> tuple[str, list[tuple[str, Any]]]:
    """(store, rows) of a store letter's `raw`; ValueError when it is not one."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        store = doc["store"]
        rows: list[tuple[str, Any]] = []
        for item in doc["rows"]:
            if "row" in item:
                rows.append((item["table"], {c: _value_from_json(v)
                                             for c, v in item["row"].items()}))
            else:
                rows.append((item["table"], [_value_from_json(v) for v in item["values"]]))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not the rows of a store letter: {exc}") from None
    if store not in STORES:
        raise ValueError(f"not the rows of a store letter: unknown store {store!r}")
    return store, rows


class DeadLetterOutput(Protocol):
    """Where a sink partition sends what its store will not take (`StoreDeadLetters`)."""

    def refused(self, rows: Rows, detail: str) -> None:
        """Rows the store refused for good, with the store's reason."""
        ...

    def unstorable(self, detail: str) -> None:
        """A record that has no rows the store could take (its value out of range)."""
        ...

    def flush(self) -> None:
        """Make every letter sent so far durable; raises when the broker refuses them."""
        ...


class StoreDeadLetters:
    """The dead letters of one store sink partition, to the dead-letter topic through a
    producer of its own, flushed by the partition before the checkpoint it belongs to."""

    def __init__(self, writer: KafkaWriter, topic: str, encode: Callable[[DeadLetter], bytes],
                 store: str, *, wall_us: Callable[[], int] = lambda: time.time_ns() // 1000
                 ) -> None:
        if store not in STORES:
            raise ValueError(f"unknown store {store!r}; one of {', '.join(STORES)}")
        self._writer = writer
        self._topic = topic
        self._encode = encode
        self.store = store
        self._wall_us = wall_us
        self.sent = 0

    def _send(self, reason: str, detail: str, raw: bytes) -> None:
        letter = DeadLetter(self.store, -1, -1, reason, detail, raw, self._wall_us())
        self._writer.send(self._topic, self._encode(letter))
        self.sent += 1
        record_dead_letter(self.store, reason)

    def refused(self, rows: Rows, detail: str) -> None:
        log.error("%s refused %d row(s), sent to %s (tapeflow dlq list): %s", self.store,
                  len(rows), self._topic, detail)
        try:
            raw = rows_to_json(self.store, rows)
        except (TypeError, ValueError) as exc:  # never raise here: the flow must go on
            raw, detail = b"", f"{detail}; the rows could not be kept: {exc}"
        self._send(STORE_REFUSED, detail, raw)

    def unstorable(self, detail: str) -> None:
        log.error("not stored in %s, sent to %s (tapeflow dlq list): %s", self.store,
                  self._topic, detail)
        self._send(UNSTORABLE_VALUE, detail, b"")

    def flush(self) -> None:
        self._writer.flush()


def store_dead_letters(conf: dict[str, Any], topic: str, encode: Callable[[DeadLetter], bytes],
                       store: str, deadline_s: float | None = None
                       ) -> Callable[[], StoreDeadLetters]:
    """A factory a sink calls on the worker that writes (a producer is not picklable)."""
    return lambda: StoreDeadLetters(KafkaWriter.for_deadline(conf, deadline_s), topic, encode,
                                    store)
