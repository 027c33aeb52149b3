"""Stream/batch parity: the same generated market through the market flow (real Kafka, Bytewax,
chDB) and through `tapeflow backfill` (Parquet files) gives identical tables.

A differential test: the flow is the reference. The market has faults of every kind (spikes,
zero and negative prices and sizes, crossed quotes, duplicates, out-of-order and late ticks,
garbage frames), several symbols and a few minutes, so the sequence, outlier, outside-quote and
late-trade paths all run. Every column but `ingested_at` is compared, FINAL, `detail` included.
A second backfill over the same files must leave every FINAL result as it was.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bytewax.testing import run_main

from flows.market import build_flow
from jobs.backfill import BackfillOptions, run_backfill
from jobs.generate import produce_market, write_market_parquet
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sinks.clickhouse.rows import TABLE_COLUMNS
from sinks.versions import CANDLE_VERSION_SHIFT
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.market.symbol_step import MarketConfig
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

SPEC = MarketSpec(seed=23, n_symbols=6, duration_s=180.0, fault_rate=0.03)
BATCH_CONFIG = MarketConfig(merge_max_wait_us=3_600_000_000)
"""What `tapeflow run market --batch` uses: the merge waits the whole horizon, so the stream's
interleaving of trades and quotes does not depend on how fast it read each topic."""
TABLES = ("trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m")
BASES: dict[str, list[set[int]]] = {"candles_1s": [], "candles_1m": []}
"""The version bases read per table, in reading order."""


def _table(client: Any, table: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(TABLE_COLUMNS[table])
    result = client.query(f"SELECT {cols} FROM {table} FINAL ORDER BY {cols}",
                          query_formats={"DateTime64*": "int"})
    rows = [tuple(r) for r in result.result_rows]
    if "version" not in TABLE_COLUMNS[table]:
        return rows
    # A candle's stored version is its writer's base + its trade count (sinks.versions): the
    # stream and each backfill run are different writers. Compared: the count part; the base
    # part is one per run, and a later run's is higher (its candles replace the earlier ones).
    BASES[table].append({r[-1] >> CANDLE_VERSION_SHIFT for r in rows})
    return [(*r[:-1], r[-1] & ((1 << CANDLE_VERSION_SHIFT) - 1)) for r in rows]


def _snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    return {t: _table(client, t) for t in TABLES}


def _database(settings: Settings, name: str) -> Settings:
    out = settings.with_overrides(clickhouse_database=f"tf_{name}_{uuid.uuid4().hex[:8]}")
    init_clickhouse(out)
    return out


def test_backfill_equals_the_stream_and_a_second_run_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    market = generate_market(SPEC)
    stream = _database(settings, "stream")
    create_topics(stream)
    codec = Codec(LocalCatalogue.load())
    produce_market(stream, market, codec)
    run_main(build_flow(stream, tail=False, codec=codec, config=BATCH_CONFIG))
    want = _snapshot(stream)

    write_market_parquet(market, tmp_path / "market")
    batch = _database(settings, "batch")
    # Small buckets: several buckets and the symbol hash split are exercised too.
    options = BackfillOptions(bucket_rows=20_000)
    report = run_backfill(batch, [tmp_path / "market"], options)
    got = _snapshot(batch)

    assert report.buckets > 1
    assert {p.name for p in report.skipped} >= {"labels.parquet", "executions.parquet"}
    # The comparison is not vacuous: every table has rows and the faults were caught.
    for table in TABLES:
        assert want[table], table
    reasons = Counter(row[1] for row in want["rejected_ticks"])
    assert {"duplicate_seq", "non_positive_price", "crossed_quote"} <= reasons.keys()
    assert reasons.keys() & {"price_outlier", "outside_quote"}
    for table in TABLES:
        assert got[table] == want[table], table

    # Idempotent: the same files again change no FINAL result; this time the buckets are
    # filtered in two worker processes (the parent writes), which must not matter either.
    again = run_backfill(batch, [tmp_path / "market"],
                         BackfillOptions(bucket_rows=20_000, workers=2))
    assert again.written == report.written
    assert _snapshot(batch) == got
    for table, bases in BASES.items():
        stream_run, first_run, second_run = bases[-3:]
        assert len(stream_run) == len(first_run) == len(second_run) == 1, table
        assert min(second_run) > min(first_run) > 0, table
