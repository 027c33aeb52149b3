"""`tapeflow dlq replay`: re-inject selected dead letters (module docstring of `jobs.dlq`).

Input letters go back to their topic through one batched producer, flushed before anything is
recorded; store letters are written one letter per transaction (or insert), so one the store
refuses again is reported and left out of the ledger without holding the others back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.dlq import (
    Letters,
    ReplayReport,
    Selection,
    plan,
    read_letters,
    record_replayed,
    rows_of,
    target,
)
from schemas.codec import Codec
from sinks.clickhouse.rows import TABLE_COLUMNS as MARKET_COLUMNS
from sinks.clickhouse.trading_rows import TABLE_COLUMNS as TRADING_COLUMNS
from sinks.clickhouse.writer import ClickHouseWriteError, ClickHouseWriter
from sinks.dead_letters import STORES
from sinks.kafka.producer import KafkaWriter
from sinks.postgres.writer import PostgresWriteError, PostgresWriter
from sources.kafka.dlq_reader import StoredLetter
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

StoreWriter = PostgresWriter | ClickHouseWriter


def replay(settings: Settings, selection: Selection, *, dry_run: bool = False,
           codec: Codec | None = None) -> ReplayReport:
    """Re-inject the selected letters not replayed before; record what went back."""
    letters: Letters = read_letters(settings, selection, codec)
    todo, report = plan(letters)
    report.dry_run = dry_run
    if dry_run:
        for stored in todo:
            report.sent[target(stored) or ""] += 1
        return report
    to_topics = [s for s in todo if target(s) not in STORES]
    to_stores = [s for s in todo if target(s) in STORES]
    # Each part is recorded as soon as it is done: a store that fails the second part does not
    # leave the first part's letters to be sent again.
    _recorded(settings, _to_topics(settings, to_topics), report)
    _recorded(settings, _to_stores(settings, to_stores, report), report)
    return report


def _recorded(settings: Settings, done: list[StoredLetter], report: ReplayReport) -> None:
    record_replayed(settings, done)
    for stored in done:
        report.sent[target(stored) or ""] += 1


def _to_topics(settings: Settings, letters: list[StoredLetter]) -> list[StoredLetter]:
    if not letters:
        return []
    writer = KafkaWriter(settings.kafka_config())
    for stored in letters:
        letter = stored.letter
        # The original Kafka timestamp (ms) where the letter kept one: the stream's receive
        # time, so the flow judges the record as it would have the first time.
        writer.send(letter.topic, letter.raw, key=stored.key or None,
                    timestamp_ms=letter.ts // 1000 if letter.ts > 0 else None)
    writer.flush()  # raises when the broker refused any: then nothing is recorded
    return letters


def _to_stores(settings: Settings, letters: list[StoredLetter],
               report: ReplayReport) -> list[StoredLetter]:
    if not letters:
        return []
    writers: dict[str, StoreWriter] = {}
    closers: list[Callable[[], Any]] = []
    done = []
    try:
        for stored in letters:
            store = stored.letter.topic
            if store not in writers:
                writers[store] = _store_writer(settings, store, closers)
            why = _write(writers[store], rows_of(stored))
            if why is None:
                done.append(stored)
            else:
                report.refused.append((stored, why))
    finally:
        for writer in writers.values():
            writer.discard()
            writer.close()  # nothing left to write: releases the connection
        for close in closers:
            close()
    return done


def _store_writer(settings: Settings, store: str,
                  closers: list[Callable[[], Any]]) -> StoreWriter:
    if store == "postgres":
        assert settings.postgres.dsn is not None
        return PostgresWriter.from_dsn(settings.postgres.dsn.get_secret_value(),
                                       settings.postgres.schema, max_rows=1_000_000)
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    closers.append(client.close)
    return ClickHouseWriter(client, max_rows=1_000_000,
                            columns={**MARKET_COLUMNS, **TRADING_COLUMNS})


def _write(writer: StoreWriter, rows: list[tuple[str, Any]]) -> str | None:
    """Write one letter's rows; None when written, else the store's reason (refused again).
    Errors that are not a refused value (the store down past its retries) are raised."""
    for table, row in rows:
        writer.buffer(table, row)  # type: ignore[arg-type]
    try:
        writer.flush()
    except (PostgresWriteError, ClickHouseWriteError) as exc:
        writer.discard()
        if not exc.refused_value:
            raise
        cause = exc.__cause__ or exc
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}"
    return None
