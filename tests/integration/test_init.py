"""`tapeflow init` creates both stores' schemas and is idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.init import init_clickhouse, init_postgres
from jobs.migrate import MigrationError, migrations
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings


def _clickhouse_schema(settings: Settings) -> list[tuple[Any, ...]]:
    client = open_clickhouse(settings.clickhouse_url())
    return client.query(
        "SELECT table, name, type, position FROM system.columns WHERE database = {db:String} "
        "ORDER BY table, position", parameters={"db": settings.clickhouse.database}
    ).result_rows


def _postgres_schema(settings: Settings, dsn: str) -> list[tuple[Any, ...]]:
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        cols = conn.execute(
            "SELECT table_name, column_name, data_type, ordinal_position FROM "
            "information_schema.columns WHERE table_schema = %s ORDER BY 1, 4",
            (settings.postgres.schema,),
        ).fetchall()
        idx = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
                           "ORDER BY 1", (settings.postgres.schema,)).fetchall()
        limits = conn.execute("SELECT account_id FROM risk_limits").fetchall()
    return cols + idx + limits


def test_init_twice_leaves_the_same_schema(settings: Settings, postgres_dsn: str) -> None:
    own = settings.with_overrides(clickhouse_database=f"{settings.clickhouse.database}_i",
                                  postgres_schema=f"{settings.postgres.schema}_i")
    first_ch = init_clickhouse(own)
    first_pg = init_postgres(own, postgres_dsn)
    assert first_ch == [m.path.name for m in migrations("clickhouse")]
    assert first_pg == [m.path.name for m in migrations("postgres")]
    ch_before, pg_before = _clickhouse_schema(own), _postgres_schema(own, postgres_dsn)
    tables = {row[0] for row in ch_before}
    assert {"trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m", "executions",
            "pnl_snapshots", "alerts"} <= tables
    pg_tables = {row[0] for row in pg_before if len(row) == 4}
    assert {"orders", "positions", "accounts", "alerts", "execution_log", "instruments",
            "risk_limits"} <= pg_tables

    assert init_clickhouse(own) == []
    assert init_postgres(own, postgres_dsn) == []
    assert _clickhouse_schema(own) == ch_before
    assert _postgres_schema(own, postgres_dsn) == pg_before


def test_an_edited_applied_migration_is_refused(settings: Settings, postgres_dsn: str) -> None:
    own = settings.with_overrides(postgres_schema=f"{settings.postgres.schema}_e")
    init_postgres(own, postgres_dsn)
    with connect_postgres(postgres_dsn, own.postgres.schema, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited'")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        init_postgres(own, postgres_dsn)


def test_replacing_tables_keep_one_row_per_replayed_tick(settings: Settings) -> None:
    """The property every sink relies on: writing the same tick twice leaves one row."""
    from decimal import Decimal

    init_clickhouse(settings)
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    row = ["AAPL", "XNAS", 1_767_623_400_000_000, 1, Decimal("189.12"), Decimal("100"), None, []]
    cols = ["symbol", "venue", "ts_event", "seq", "price", "size", "trade_id", "conditions"]
    client.command("TRUNCATE TABLE trades")
    client.insert("trades", [row], column_names=cols)
    client.insert("trades", [row], column_names=cols)
    assert client.query("SELECT count() FROM trades FINAL").result_rows == [(1,)]
