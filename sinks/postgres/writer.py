"""A batching Postgres writer for the trading tables: one transaction per flush, retried.

Why batches in one transaction: a flush is all or nothing, so after any failure the store
holds either the whole batch or none of it, and the batch stays buffered for the next flush
(or for the replay after a crash). Two ways to send it, measured (bench/trading_writes.py,
docs/postgres-sink.md): per table, COPY into a temporary stage table and one `INSERT ...
SELECT ... ON CONFLICT` (`method="copy"`, the default: the faster), or pipelined `executemany`
of the upserts. Both leave the same rows.

Why replays and retries are safe: the statements (`schemas/postgres/statements.sql`) are
idempotent. `orders`, `positions` and `accounts` are upserts guarded by the monotonic
`version` (`WHERE t.version < EXCLUDED.version`), so an older or equal version never moves a
row backwards; `execution_log`, `cash_movements` and `alerts` are `ON CONFLICT DO NOTHING`,
so the first row per key stays (and operators' acknowledgement columns are never touched). A
commit whose outcome is unknown (the connection dropped during COMMIT) can therefore be sent
again.

The buffer holds one entry per key: for a versioned table the highest version, for an
append-only table the first, i.e. what the guards would keep. The trading flow buffers core
states (`add_output`, `buffer_output`), mapped to a row once, at the flush, in their last
version: the tables end exactly as writing every state in order would. A state whose values do
not fit their columns is left out at the flush (`PgRangeError`) and handed to `on_unmapped`
(logged; a sink partition points it at its dead letters, `sinks.isolation`); its key keeps the
row of the previous flush.

Errors: connection-level failures (`psycopg.OperationalError`: SQLSTATE classes 08, 53, 57,
serialization failures 40001 and deadlocks 40P01) and a store that does not answer when
reconnecting are retried with exponential backoff and jitter (tenacity), each retry logged
with the store's name; a broken connection is replaced from the factory. Anything else (a
constraint, a bad value, a missing table) raises `PostgresWriteError` at once with the
SQLSTATE, chained to psycopg's exception class for that SQLSTATE. Either way nothing is
dropped: the batch stays buffered.

One writer belongs to one thread (one Bytewax partition, one job) and owns its connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import psycopg
from psycopg import pq
from tenacity import RetryCallState

from sinks.batching import BatchPolicy, BatchWriter
from sinks.postgres.errors import PostgresWriteError, is_transient, refuses_value
from sinks.postgres.rows import (
    TABLE_COLUMNS,
    TABLE_KEYS,
    VERSIONED_TABLES,
    PgRangeError,
    Row,
    account_row,
    alert_row,
    cash_row,
    execution_row,
    order_row,
    position_row,
)
from sinks.versions import MARK_VERSIONED_TABLES
from tapeflow.core.models import CashMovement, ExecutionReport
from tapeflow.core.trading.account_step import TradingOutput
from tapeflow.core.trading.cash import CashOutcome
from tapeflow.services.dsn import redact as _redact
from tapeflow.services.postgres import connect_postgres
from tapeflow.services.postgres_sql import statement

__all__ = ["METHODS", "STATEMENT_OF", "LazyRow", "PostgresWriteError", "PostgresWriter"]

log = logging.getLogger("tapeflow.sinks.postgres")

ConnFactory = Callable[[], "psycopg.Connection[Any]"]

STATEMENT_OF: dict[str, str] = {
    "orders": "upsert_orders",
    "positions": "upsert_positions",
    "accounts": "upsert_accounts",
    "execution_log": "insert_execution_log",
    "alerts": "insert_alerts",
    "cash_movements": "insert_cash_movements",
}
"""Table -> its statement in schemas/postgres/statements.sql."""

STAGED: dict[str, tuple[str, str, str]] = {
    table: (f"stage_{table}", f"copy_{table}", f"merge_{table}") for table in STATEMENT_OF
}
"""Table -> its COPY path's statements: create the temporary stage table, COPY into it, and
move it into the table with the same guard as the upsert."""

METHODS = ("copy", "executemany")


class LazyRow(NamedTuple):
    """A buffered state whose row is built at the flush: `build(item)` (a mapper of
    `sinks.postgres.rows`), plus `version_base` on the row's version (`restart_version_base`)."""

    version: int
    build: Callable[[Any], Row]
    item: Any
    version_base: int = 0

    def row(self) -> Row:
        row = self.build(self.item)
        if self.version_base:
            row["version"] += self.version_base
        return row


Entry = Row | LazyRow


class PostgresWriter(BatchWriter):
    """Buffers trading rows per table and writes them in one transaction per flush.

    `connect` returns a new connection whose search_path leads to the tapeflow schema
    (`from_dsn` builds one with `tapeflow.services.postgres.connect_postgres`); it is called lazily
    and again after a connection breaks. `store` names the store in logs and errors.
    """

    metrics_store = "postgres"

    def __init__(
        self,
        connect: ConnFactory,
        *,
        max_rows: int = 5_000,
        max_age_s: float = 1.0,
        attempts: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        deadline_s: float | None = None,
        store: str = "Postgres",
        method: str = "copy",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(BatchPolicy(max_rows, max_age_s, attempts, backoff_s, max_backoff_s,
                                     deadline_s), clock=clock, sleep=sleep)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self._connect = connect
        self.store = store
        self.method = method
        self._conn: psycopg.Connection[Any] | None = None
        self._staged: psycopg.Connection[Any] | None = None
        """The connection whose stage tables exist (temporary tables live per session)."""
        self._buffers: dict[str, dict[tuple[Any, ...], Entry]] = {t: {} for t in TABLE_COLUMNS}
        self._count = 0
        self.unmapped = 0
        """States left out at a flush because a value does not fit its column."""
        self.on_unmapped: Callable[[Any, Exception], None] = _log_unmapped
        """Called with each state left out at a flush, and why."""

    @classmethod
    def from_dsn(cls, dsn: str, schema: str, **kwargs: Any) -> PostgresWriter:
        """A writer connecting to `dsn` with `schema` first on the search_path."""
        kwargs.setdefault("store", f"Postgres {_redact(dsn)} (schema {schema})")
        return cls(lambda: connect_postgres(dsn, schema, autocommit=True), **kwargs)

    @property
    def pending(self) -> int:
        """Rows buffered (one per key) and not yet written."""
        return self._count

    def add(self, table: str, row: Row, now: float | None = None) -> int:
        """Buffer one row; flush when a bound is reached. Returns the rows written by this call."""
        self.buffer(table, row, now)
        return self.flush_if_due(now)

    def buffer(self, table: str, row: Row, now: float | None = None) -> None:
        """Buffer one row without flushing, whatever the bounds (a sink isolating a row)."""
        buffer = self._buffers.get(table)
        if buffer is None:
            known = ", ".join(TABLE_COLUMNS)
            raise KeyError(f"no statement for table {table!r}; known tables: {known}")
        key = tuple(row[column] for column in TABLE_KEYS[table])
        held = buffer.get(key)
        if held is None:
            buffer[key] = row
            self._count += 1
        elif table in VERSIONED_TABLES and row["version"] > _version(held):
            buffer[key] = row
        self._started(now)

    def discard(self) -> None:
        """Drop every buffered row unwritten (a sink re-adds the ones it still wants)."""
        for rows in self._buffers.values():
            rows.clear()
        self._count = 0
        self._flushed()

    def add_state(self, table: str, key: tuple[Any, ...], state: LazyRow,
                  now: float | None = None) -> int:
        """Buffer a state under its primary key; its row is built at the flush, only if it is
        still the one to write then (the highest version, or the first for an append-only
        table). Returns the rows written by this call."""
        self._hold(table, key, state)
        self._started(now)
        return self.flush_if_due(now)

    def _hold(self, table: str, key: tuple[Any, ...], state: LazyRow) -> None:
        buffer = self._buffers[table]
        held = buffer.get(key)
        if held is None:
            buffer[key] = state
            self._count += 1
        elif table in VERSIONED_TABLES and state.version > _version(held):
            buffer[key] = state

    def add_many(self, rows: Iterable[tuple[str, Row]], now: float | None = None) -> int:
        """Buffer (table, row) pairs in order; returns the rows written meanwhile."""
        return sum(self.add(table, row, now) for table, row in rows)

    def add_output(self, output: TradingOutput, report: ExecutionReport | None = None,
                   now: float | None = None, *,
                   cash: tuple[CashMovement, CashOutcome] | None = None,
                   version_base: int = 0) -> int:
        """Buffer the states of one trading step (`buffer_output`); flush when a bound is
        reached. Returns the rows written by this call."""
        self.buffer_output(output, report, now, cash=cash, version_base=version_base)
        return self.flush_if_due(now)

    def buffer_output(self, output: TradingOutput, report: ExecutionReport | None = None,
                      now: float | None = None, *,
                      cash: tuple[CashMovement, CashOutcome] | None = None,
                      version_base: int = 0) -> None:
        """Buffer the states of one trading step without flushing, mapped at the flush:
        `report` is the report that produced `output.outcome` (the execution_log row), `cash`
        the movement and its outcome (the cash_movements row). `version_base` is added to the
        versions of positions and accounts (`sinks.versions`)."""
        hold = self._hold
        outcome = output.outcome
        if outcome is not None and report is not None:
            hold("execution_log", (report.exec_id,),
                 LazyRow(0, _execution_row, (report, outcome)))
        if cash is not None:
            hold("cash_movements", (cash[0].movement_id,), LazyRow(0, _cash_row, cash))
        if (order := output.order) is not None:
            hold("orders", (order.order_id,), LazyRow(order.version, order_row, order))
        if (position := output.position) is not None:
            base = version_base if "positions" in MARK_VERSIONED_TABLES else 0
            hold("positions", (position.account_id, position.symbol),
                 LazyRow(position.version + base, position_row, position, base))
        if (account := output.account) is not None:
            base = version_base if "accounts" in MARK_VERSIONED_TABLES else 0
            hold("accounts", (account.account_id,),
                 LazyRow(account.version + base, account_row, account, base))
        for alert in output.alerts:
            hold("alerts", (alert.alert_id,), LazyRow(0, alert_row, alert))
        self._started(now)

    def flush(self) -> int:
        """Write every buffered row in one transaction. Returns the rows written; raises
        `PostgresWriteError` with every row still buffered."""
        batch = self._rows()
        count = sum(len(rows) for rows in batch.values())
        if not count:
            for entries in self._buffers.values():
                entries.clear()  # only unmappable states were left
            self._count = 0
            self._flushed()
            return 0
        started = time.perf_counter()
        failure = self._with_retries(is_transient, self._write, batch)
        if failure is not None:
            outcome = (f"failed {failure.attempts} times on connection-level errors "
                       f"({self.retry_bound()}); the rows stay buffered; last"
                       if failure.transient else
                       f"failed and is not retryable (attempt {failure.attempts}); the whole "
                       "batch was rolled back and stays buffered")
            raise PostgresWriteError(
                f"{self.store}: flush of {count} rows ({_tables(batch)}) {outcome}: "
                f"{_describe(failure.error)}",
                rows=count, attempts=failure.attempts, transient=failure.transient,
                sqlstate=_sqlstate(failure.error),
                refused_value=not failure.transient and refuses_value(failure.error),
            ) from failure.error
        for table, rows in batch.items():
            self._buffers[table].clear()
            self._record_batch(table, len(rows), started)
        self._count = 0
        self._flushed()
        self.rows_written += count
        self.batches_written += 1
        return count

    def _rows(self) -> dict[str, list[Row]]:
        """The buffered rows per table, lazy states mapped now; a state whose values do not
        fit its columns is dropped from the buffer (it can never be written) and handed to
        `on_unmapped`."""
        batch: dict[str, list[Row]] = {}
        for table, entries in self._buffers.items():
            if not entries:
                continue
            rows: list[Row] = []
            bad: list[tuple[Any, ...]] = []
            for key, entry in entries.items():
                if isinstance(entry, LazyRow):
                    try:
                        rows.append(entry.row())
                    except (PgRangeError, ValueError, TypeError) as exc:
                        bad.append(key)
                        self.on_unmapped(entry.item, exc)
                    continue
                rows.append(entry)
            for key in bad:
                del entries[key]
            self.unmapped += len(bad)
            self._count -= len(bad)
            if rows:
                batch[table] = rows
        return batch

    def close(self) -> None:
        """Write whatever is pending, then close the connection."""
        try:
            self.flush()
        finally:
            self._drop_connection()

    def _abandon(self) -> None:
        self._drop_connection()

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop_connection()
        conn = self._connect()
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.commit()  # keep the factory's session setup (search_path), then autocommit
        conn.autocommit = True  # so `transaction()` is a real BEGIN ... COMMIT
        self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._staged = None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("%s: closing a broken connection failed", self.store, exc_info=True)

    def _write(self, batch: dict[str, list[Row]]) -> None:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                if self.method == "executemany":
                    for table, rows in batch.items():
                        cur.executemany(statement(STATEMENT_OF[table]), rows)
                    return
                if self._staged is not conn:  # once per session, rolled back with a failure
                    for stage, _copy, _merge in STAGED.values():
                        cur.execute(statement(stage))
                for table, rows in batch.items():
                    _stage, copy_into, merge = STAGED[table]
                    columns = TABLE_COLUMNS[table]
                    with cur.copy(statement(copy_into)) as copy:
                        for row in rows:
                            copy.write_row([row[c] for c in columns])
                    cur.execute(statement(merge))
            self._staged = conn
        except Exception:
            if conn.closed or conn.broken:
                self._drop_connection()
            raise

    def _log_retry(self, state: RetryCallState, exc: BaseException | None) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        batch = state.args[0] if state.args else {}
        rows = sum(len(r) for r in batch.values()) if isinstance(batch, dict) else 0
        log.warning("%s: write of %d rows failed (attempt %d, %s): %s; next attempt in %.1f s",
                    self.store, rows, state.attempt_number, self.retry_bound(),
                    _describe(exc), wait)


def _version(entry: Entry) -> int:
    return entry.version if isinstance(entry, LazyRow) else int(entry["version"])


def _execution_row(pair: tuple[ExecutionReport, Any]) -> Row:
    report, outcome = pair
    return execution_row(report, outcome)


def _cash_row(pair: tuple[CashMovement, CashOutcome]) -> Row:
    return cash_row(*pair)


def _log_unmapped(state: Any, exc: Exception) -> None:
    log.error("not stored in Postgres: %s", exc)


def _tables(batch: dict[str, list[Row]]) -> str:
    return ", ".join(f"{table} {len(rows)}" for table, rows in batch.items())


def _sqlstate(exc: BaseException | None) -> str | None:
    return getattr(exc, "sqlstate", None)


def _describe(exc: BaseException | None) -> str:
    """Exception class, SQLSTATE and the first line of the message."""
    if exc is None:
        return "no exception"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    state = _sqlstate(exc)
    prefix = f"{type(exc).__name__}" + (f" [SQLSTATE {state}]" if state else "")
    return f"{prefix}: {first}" if first else prefix
