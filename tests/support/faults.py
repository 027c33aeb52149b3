"""What the fault tests share: a TCP proxy that can cut a service off, a trading flow run as a
subprocess (`tapeflow run trading`), a synthetic order flow produced in two halves, an
undisturbed reference run, and the Postgres state the two runs must agree on.

Why a proxy rather than stopping the embedded Postgres: the test server is shared by every test
of the session (and the package stops it when its last user leaves), so stopping it would
disturb more than the flow under test. The flow talks to Postgres through the proxy; `cut`
closes the listening socket and every live connection (clients see a reset, then "connection
refused"), `restore` listens on the same port again.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from flows.trading import build_flow
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_MARKS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sinks.postgres.rows import ORDER_COLUMNS
from sources.kafka.flow_source import consumer_group
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.models import Trade
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO
from tests.support.order_flow import LIMITS_SQL

SPEC = MarketSpec(seed=23, n_symbols=4, n_accounts=3, duration_s=40.0, order_rate=5.0,
                  fault_rate=0.03)
MARK_EVERY_US = 1_000_000
OUTAGE_S = 20.0

COMPARED: dict[str, tuple[str, ...]] = {
    "orders": ORDER_COLUMNS,
    "positions": ("account_id", "symbol", "qty", "avg_px", "realised_pnl", "commissions",
                  "opened_ts"),
    "accounts": ("account_id", "cash", "realised_pnl", "commissions"),
    "execution_log": ("exec_id", "outcome", "outcome_detail"),
    "alerts": ("alert_id", "rule", "severity", "source_event_id"),
}
"""Every column the reports decide; marks (and unrealised P&L) depend on arrival order."""


def wait_until(what: str, check: Callable[[], bool], timeout_s: float,
               every_s: float = 0.5) -> float:
    """Poll `check` until true; returns the seconds it took, fails the test after `timeout_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic() - started


class TcpProxy:
    """127.0.0.1:`port` -> `target` (a TCP address or a Unix socket path), cut on demand."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @classmethod
    def for_postgres(cls, dsn: str) -> TcpProxy:
        info = conninfo_to_dict(dsn)
        host, port = str(info.get("host") or "/tmp"), int(info.get("port") or 5432)
        return cls(f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port))

    def dsn(self, dsn: str) -> str:
        """`dsn` (user, database) through the proxy."""
        info = conninfo_to_dict(dsn)
        return (f"postgresql://{info.get('user') or 'postgres'}@127.0.0.1:{self.port}/"
                f"{info.get('dbname') or 'postgres'}")

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if self._listener is not listener:  # accepted just as it was cut
                client.close()
                return
            try:
                if isinstance(self._target, str):
                    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                else:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                upstream.connect(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Stop listening and reset every live connection."""
        if self._listener is not None:
            # shutdown first: a bare close() leaves the socket listening while accept() holds it
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        """Listen on the same port again."""
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()


@dataclass
class OrderFlow:
    """The produced input: (topic, value, key) in arrival order, cut into two halves."""

    messages: list[tuple[str, bytes, str | None]]
    exec_ids: list[list[str]]  # distinct exec_ids of the first half, then of both halves

    def send(self, settings: Settings, half: int) -> None:
        middle = len(self.messages) // 2
        part = self.messages[:middle] if half == 0 else self.messages[middle:]
        writer = KafkaWriter(settings.kafka_config())
        for topic, value, key in part:
            writer.send(settings.topic(topic), value, key=key)
        writer.flush()


def order_flow(codec: Codec) -> OrderFlow:
    """Executions (with the generator's duplicates and garbage) and throttled marks."""
    market = generate_market(SPEC)
    messages: list[tuple[str, bytes, str | None]] = []
    ids: list[str | None] = []
    last_mark: dict[str, int] = {}
    for pos, (topic, key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, Garbage):
                messages.append((topic, record.frame(codec.encode), key))
                ids.append(None)
            else:
                messages.append((topic, codec.encode(record), key))
                ids.append(record.exec_id)
        elif (isinstance(record, Trade) and market.labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            messages.append((TOPIC_MARKS, codec.encode(record), record.symbol))
            ids.append(None)
    middle = len(messages) // 2
    first = sorted({x for x in ids[:middle] if x is not None})
    both = sorted({x for x in ids if x is not None})
    return OrderFlow(messages, [first, both])


def init_stores(settings: Settings, dsn: str, chdb_dir: Path, *, topics: bool) -> None:
    """`tapeflow init` for a subprocess flow's stores (its own chDB directory), then the
    report-decided risk limits."""
    env = flow_env(settings, dsn, chdb_dir)
    args = [sys.executable, "-m", "tapeflow.cli", "init"]
    if not topics:
        args.append("--no-kafka")
    subprocess.run(args, env=env, cwd=REPO, check=True, timeout=120, capture_output=True)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()


def flow_env(settings: Settings, dsn: str, chdb_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update({
        "TAPEFLOW_HOME": str(chdb_dir.parent / "home"),
        **kafka_env(settings),
        "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{chdb_dir}",
        "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
        "TAPEFLOW_POSTGRES_DSN": dsn,
        "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "TAPEFLOW_KAFKA_PARTITIONS": str(settings.kafka.partitions),
        "TAPEFLOW_METRICS_PORT": "0",
    })
    return env


class FlowProcess:
    """`tapeflow run trading` (recovery on; tailing unless `batch`) in a subprocess, its output
    in `log`."""

    def __init__(self, settings: Settings, dsn: str, chdb_dir: Path, log: Path, *,
                 batch: bool = False) -> None:
        self.log = log
        self._out = log.open("ab")
        args = [sys.executable, "-m", "tapeflow.cli", "run", "trading",
                "--snapshot-interval", "1"]
        self.proc = subprocess.Popen(
            [*args, "--batch"] if batch else args,
            env=flow_env(settings, dsn, chdb_dir), cwd=REPO, stdout=self._out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait(self, timeout_s: float) -> int:
        """The exit code of a flow that ends by itself (a batch run, a failure)."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (a clean stop after a snapshot) and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        return code


def pg_rows(dsn: str, schema: str, table: str) -> list[tuple[Any, ...]]:
    columns = COMPARED[table]
    with connect_postgres(dsn, schema) as conn:
        cur = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        names = [d.name for d in cur.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return sorted(tuple(r[c] for c in columns) for r in rows)


def pg_state(dsn: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: pg_rows(dsn, schema, table) for table in COMPARED}


def logged_exec_ids(dsn: str, schema: str) -> int:
    with connect_postgres(dsn, schema) as conn:
        row = conn.execute("SELECT count(*) FROM execution_log").fetchone()
    return int(row[0]) if row else 0


def committed(settings: Settings, topic: str, partitions: int) -> list[int]:
    """The trading flow's committed offsets (after each snapshot) on `topic`."""
    consumer = Consumer({**settings.kafka_config(), "enable.auto.commit": False,
                         "group.id": consumer_group(settings, "trading", None)})
    try:
        parts = consumer.committed([TopicPartition(settings.topic(topic), p)
                                    for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return [tp.offset for tp in parts]


def reference_run(settings: Settings, dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """An undisturbed batch run of the same topics into `settings`' own stores (in-process,
    on the session's chDB)."""
    from jobs.init import init_clickhouse, init_postgres

    init_clickhouse(settings)
    init_postgres(settings, dsn)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()
    run_main(build_flow(settings, tail=False, codec=Codec(LocalCatalogue.load()),
                        tick=timedelta(seconds=5)))
    return pg_state(dsn, settings.postgres.schema)
