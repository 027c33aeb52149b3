"""The Bytewax sink of the trading flow's Postgres state, and the restart version base.

Same contract as `sinks.partition` (read that docstring): `FixedPartitionedSink`s with one
partition, flushed at every epoch's `snapshot()` so a recovery snapshot never covers output
that only lived in memory; between checkpoints the writers' own size and age bounds apply.
The writer runs on a thread of its own (`BackgroundWriterPartition`), so the flow's worker,
and the alerts it sends, never wait for a COPY; it keeps the latest state per key and maps it
to a row at the flush (`PostgresWriter.buffer_output`).
A record that cannot be mapped, or whose rows Postgres refuses for good, is a dead letter
(never raised: one exception kills the dataflow; refused rows are isolated from the rest of
their batch, `sinks.isolation`); a failing write blocks the writer thread while it retries,
and an error that outlasts the retries stops the flow (`sinks.partition`, docs/faults.md), so
it never snapshots offsets for output that was not written.

Idempotence is the stores': Postgres upserts guarded by a monotonic version, first-wins
inserts for `execution_log` and `alerts` (docs/postgres-sink.md); ClickHouse
ReplacingMergeTree keys (`sinks.clickhouse.trading_rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bytewax.outputs import FixedPartitionedSink

from sinks.dead_letters import DeadLetterOutput
from sinks.partition import BackgroundWriterPartition
from sinks.postgres.rows import PgRangeError, trading_rows
from sinks.postgres.writer import PostgresWriteError, PostgresWriter
from sinks.versions import MARK_VERSIONED_TABLES
from tapeflow.core.trading.shard_step import CashResult, ExecutionResult, StateChange

log = logging.getLogger("tapeflow.sinks.postgres")


def _rebase(rows: list[tuple[str, Any]], version_base: int) -> list[tuple[str, Any]]:
    if not version_base:
        return rows
    return [(table, {**row, "version": row["version"] + version_base})
            if table in MARK_VERSIONED_TABLES else (table, row) for table, row in rows]


def _postgres_rows(item: Any, version_base: int = 0) -> Any:
    """The (table, row) pairs of one trading item for Postgres, every state mapped at once:
    a refused item's rows in its dead letter, and the reference the latest-state writes are
    tested against."""
    if isinstance(item, ExecutionResult):
        return _rebase(trading_rows(item.output, item.report), version_base)
    if isinstance(item, StateChange):
        return _rebase(trading_rows(item.output), version_base)
    if isinstance(item, CashResult):
        return _rebase(trading_rows(item.output, cash=(item.movement, item.outcome)),
                       version_base)
    raise TypeError(f"no Postgres table for {type(item).__name__} records")


class PostgresSink(FixedPartitionedSink[Any, None]):
    """`ExecutionResult`, `CashResult` and `StateChange` items into orders, positions,
    accounts, execution_log, cash_movements and alerts. `writer_factory` builds a
    `PostgresWriter` on the worker that writes (`lambda: PostgresWriter.from_dsn(dsn,
    schema)`); `version_base` is added to the versions of positions and accounts
    (`restart_version_base`); `dead_letters` builds where records Postgres refuses go
    (`sinks.dead_letters.store_dead_letters`)."""

    def __init__(self, writer_factory: Callable[[], PostgresWriter],
                 version_base: int = 0,
                 dead_letters: Callable[[], DeadLetterOutput] | None = None) -> None:
        self._writer_factory = writer_factory
        self._version_base = version_base
        self._dead_letters = dead_letters

    def list_parts(self) -> list[str]:
        return ["postgres"]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: None) -> BackgroundWriterPartition:
        writer = self._writer_factory()
        base = self._version_base

        def buffer(item: Any) -> None:
            if isinstance(item, ExecutionResult):
                writer.buffer_output(item.output, item.report, version_base=base)
            elif isinstance(item, StateChange):
                writer.buffer_output(item.output, version_base=base)
            elif isinstance(item, CashResult):
                writer.buffer_output(item.output, cash=(item.movement, item.outcome),
                                     version_base=base)
            else:
                raise TypeError(f"no Postgres table for {type(item).__name__} records")

        return BackgroundWriterPartition(
            writer, buffer, lambda item: _postgres_rows(item, base), store="Postgres",
            unmappable=(PgRangeError, TypeError, ValueError), write_error=PostgresWriteError,
            dead_letters=self._dead_letters() if self._dead_letters else None)
