"""Live updates for the browser: watchers on the stores and topics, fanned out to viewers.

Why server-side watchers and pushed events (server-sent events) rather than pages polling:
one watcher per store or topic serves every viewer, a viewer gets a change as soon as the
watcher sees it, and access rules are applied once per event on the server, where the viewer
cannot change them (`tapeflow.web.access`).

- accounts and positions: Postgres rows changed since the last look (`updated_at`, asked again
  from a little before the last answer so a transaction that committed late is not missed;
  the newest version of each row wins), every `every_s` (0.2 s);
- alerts: risk.alerts from its end, as the trading flow publishes them;
- candles: md.candles from its end, closed and corrected candles as the market flow emits them.

Each event is a JSON-ready dict with a `kind` and, when it belongs to an account, its
`account_id`; exact decimals travel as strings.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from schemas.codec import Codec, DecodeError
from schemas.sql_files import statement
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

log = logging.getLogger("tapeflow.web.live")
PG_SQL = "queries/live_postgres.sql"
LATE_COMMIT_MARGIN = timedelta(seconds=5)
"""How far back each look at Postgres starts before the previous answer's newest row."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


JS_SAFE_INT = 2**53
"""Integers beyond this lose digits as JavaScript numbers (row versions do): sent as strings."""


def jsonable(value: Any) -> Any:
    """Decimals as exact strings, times as ISO-8601 UTC, big integers as strings, the rest as
    is."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= JS_SAFE_INT:
        return str(value)
    if isinstance(value, datetime):  # naive: ClickHouse's UTC columns without a zone
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any]]
    accept: Callable[[dict[str, Any]], bool]


@dataclass
class Hub:
    """Thread-safe fan-out: watchers `publish` from their threads, each viewer's stream reads
    its own asyncio queue. A slow viewer loses the oldest events of its own queue, never
    anyone else's."""

    max_queue: int = 1000
    _by_id: dict[int, _Subscriber] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, accept: Callable[[dict[str, Any]], bool]) -> tuple[int, asyncio.Queue[
            dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.max_queue)
        sub = _Subscriber(asyncio.get_running_loop(), queue, accept)
        with self._lock:
            key = id(sub)
            self._by_id[key] = sub
        return key, queue

    def unsubscribe(self, key: int) -> None:
        with self._lock:
            self._by_id.pop(key, None)

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._by_id.values())
        for sub in subscribers:
            if sub.accept(event):
                sub.loop.call_soon_threadsafe(_offer, sub.queue, event)


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)


class Watcher(threading.Thread):
    """A daemon thread that calls `look()` until stopped; errors are logged and retried."""

    def __init__(self, name: str, every_s: float) -> None:
        super().__init__(name=f"tapeflow-web-{name}", daemon=True)
        self.every_s = every_s
        self.stopped = threading.Event()

    def look(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.look()
            except Exception as exc:  # a store that went away: say so, try again
                log.warning("%s: %s", self.name, str(exc).splitlines()[0] if str(exc) else exc)
                self.stopped.wait(1.0)
            self.stopped.wait(self.every_s)

    def stop(self) -> None:
        self.stopped.set()


class StateWatcher(Watcher):
    """Accounts and positions changed in Postgres since the last look."""

    def __init__(self, settings: Settings, hub: Hub, every_s: float = 0.2) -> None:
        super().__init__("state", every_s)
        self._settings = settings
        self._hub = hub
        self._since = {"accounts": EPOCH, "positions": EPOCH}
        self._seen: dict[tuple[str, ...], int] = {}
        self._conn: Any = None

    def look(self) -> None:
        if self._conn is None:
            dsn = self._settings.postgres_url()
            if dsn is None:
                raise RuntimeError("no Postgres DSN for the live view")
            self._conn = connect_postgres(dsn, self._settings.postgres.schema, autocommit=True)
        for kind, params in (("accounts", {}), ("positions", {"account": None})):
            since = self._since[kind] - LATE_COMMIT_MARGIN
            rows = self._conn.execute(statement(PG_SQL, kind),
                                      {"accounts": None, "since": since, **params})
            names = [c.name for c in rows.description]
            for values in rows.fetchall():
                row = dict(zip(names, values, strict=True))
                key = (kind, row["account_id"], row.get("symbol") or "")
                if self._seen.get(key, -1) >= row["version"]:
                    continue
                self._seen[key] = row["version"]
                self._since[kind] = max(self._since[kind], row["updated_at"])
                row.pop("updated_at")
                self._hub.publish({"kind": kind[:-1], **{k: jsonable(v) for k, v in row.items()}})

    def stop(self) -> None:
        super().stop()
        if self._conn is not None:
            self._conn.close()


class TopicWatcher(Watcher):
    """A topic from its end: each record decoded and turned into an event by `to_event`."""

    def __init__(self, settings: Settings, topic: str, codec: Codec, *, hub: Hub, expect: str,
                 to_event: Callable[[Any], dict[str, Any]]) -> None:
        super().__init__(topic, 0.0)
        self._conf = {**settings.kafka_config(), "group.id": f"tapeflow-web-{uuid.uuid4().hex}",
                      "enable.auto.commit": False}
        self._topic = topic
        self._codec = codec
        self._expect = expect
        self._to_event = to_event
        self._hub = hub
        self._consumer: Consumer | None = None

    def _assign(self) -> Consumer:
        consumer = Consumer(self._conf)
        meta = consumer.list_topics(self._topic, timeout=10)
        partitions = meta.topics[self._topic].partitions if self._topic in meta.topics else {}
        consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in partitions])
        return consumer

    def look(self) -> None:
        if self._consumer is None:
            self._consumer = self._assign()
        for msg in self._consumer.consume(500, timeout=0.2):
            if msg.error() is not None:
                continue
            try:
                record = self._codec.decode(msg.value() or b"", expect=self._expect)
            except DecodeError:
                continue
            self._hub.publish(self._to_event(record))

    def stop(self) -> None:
        super().stop()
        if self._consumer is not None:
            self._consumer.close()
