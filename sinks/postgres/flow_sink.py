"""The Bytewax sink of the trading flow's Postgres state, and the restart version base.

Same contract as `sinks.partition` (read that docstring): `FixedPartitionedSink`s with one
partition, flushed at every epoch's `snapshot()` so a recovery snapshot never covers output
that only lived in memory; between checkpoints the writers' own size and age bounds apply.
A record that cannot be mapped, or whose rows Postgres refuses for good, is a dead letter
(never raised: one exception kills the dataflow); a failing write blocks while the writer
retries, and an error that outlasts the retries stops the flow (`sinks.partition`,
docs/faults.md), so it never snapshots offsets for output that was not written.

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
from sinks.partition import WriterPartition
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
    """The (table, row) pairs of one trading item for Postgres."""
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
                   resume_state: None) -> WriterPartition:
        base = self._version_base
        return WriterPartition(self._writer_factory(),
                               lambda item: _postgres_rows(item, base), store="Postgres",
                               unmappable=(PgRangeError, TypeError, ValueError),
                               write_error=PostgresWriteError,
                               dead_letters=self._dead_letters() if self._dead_letters else None)
