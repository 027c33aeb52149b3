"""A short, human summary of what the flows wrote: ticks, candles, P&L and alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from schemas.sql_files import statement
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

CH_QUERIES = "queries/summary_clickhouse.sql"
PG_QUERIES = "queries/summary_postgres.sql"


def market_summary(settings: Settings) -> Iterator[str]:
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    counts = client.query(statement(CH_QUERIES, "tick_counts")).named_results()
    row: dict[str, Any] = next(iter(counts))
    yield (f"ticks: {row['clean_trades']:,} clean trades, {row['clean_quotes']:,} clean quotes, "
           f"{row['rejected']:,} rejected")
    for kind, reason, n in client.query(statement(CH_QUERIES, "rejections_by_reason")).result_rows:
        yield f"  rejected {kind:5} {reason:20} {n:,}"
    # A candle's version is its trade count, so FINAL no longer tells corrected candles apart.
    yield f"candles: {row['candles_1s']:,} of 1 s, {row['candles_1m']:,} of 1 min"


def trading_summary(settings: Settings) -> Iterator[str]:
    assert settings.postgres.dsn is not None
    with connect_postgres(settings.postgres.dsn.get_secret_value(),
                          settings.postgres.schema) as conn:
        outcomes = conn.execute(statement(PG_QUERIES, "execution_outcomes")).fetchall()
        yield "executions: " + (", ".join(f"{o} {n:,}" for o, n in outcomes) or "none")
        yield "accounts (cash, realised P&L, unrealised P&L, equity):"
        for account, cash, realised, unrealised, equity in conn.execute(
                statement(PG_QUERIES, "accounts")).fetchall():
            yield (f"  {account:12} {cash:>18,.2f} {realised:>14,.2f} {unrealised:>14,.2f} "
                   f"{equity:>18,.2f}")
        (open_positions,) = conn.execute(statement(PG_QUERIES, "open_positions")).fetchone() \
            or (0,)
        yield f"open positions: {open_positions}"
        alerts = conn.execute(statement(PG_QUERIES, "alerts_by_rule")).fetchall()
        yield "alerts: " + (", ".join(f"{r} {s} {n}" for r, s, n in alerts) or "none")
