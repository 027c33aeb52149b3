"""Analytics queries: the Python API behind `tapeflow query` and `tapeflow chart`.

    from jobs.query import Analytics
    with Analytics(settings) as q:
        df = q.candles("AAPL", "5m", start="2024-03-01T14:00", end="2024-03-01T16:00")

Every method returns a polars DataFrame. Why these choices (docs/query.md has the user's view):

- Exact numbers. Prices, sizes, money and P&L are `pl.Decimal` columns with the store's
  precision and scale (prices Decimal(18, 8), volumes and money Decimal(38, 8), notional
  Decimal(38, 16)), never floats: ClickHouse results come through Arrow decimal128 and Postgres
  NUMERIC through Python `Decimal`, both exact. Timestamps are `Datetime("us", "UTC")`.
- Bound parameters only. The SQL is in `schemas/queries/query_*.sql`; ClickHouse values are
  server-side `{name:Type}` parameters, Postgres values psycopg parameters. A symbol such as
  `X'; DROP TABLE trades; --` is a value like any other.
- FINAL on every ClickHouse read: the tables are ReplacingMergeTrees and a replay or a late
  correction leaves a row until merges run; FINAL reads the settled row (the highest version).
- Coarse candles (5m, 15m, 1h, 1d) are rolled up from the stored 1m candles in SQL by the rule
  of `tapeflow.core.market.rollup` (tests/integration/test_query.py proves them equal to the core's
  direct build from the trades), and are returned whole: a coarse candle whose bucket starts in
  [start, end) is built from all its parts, and one that starts before `start` is not returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import polars as pl
import psycopg
from clickhouse_connect.driver import exceptions as ch_errors

from jobs.local.services import ensure_postgres
from jobs.query_params import (
    INTERVALS,
    QueryInputError,
    TimeRange,
    interval_us,
    severities_from,
)
from jobs.store_lock import open_for_reading
from schemas.sql_files import statement
from sinks.clickhouse.rows import CANDLE_TABLES
from tapeflow.errors import StoreUnavailableError
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

CH_SQL = "queries/query_clickhouse.sql"
PG_SQL = "queries/query_postgres.sql"

PRICE = pl.Decimal(18, 8)
MONEY = pl.Decimal(38, 8)
UTC_TIME = pl.Datetime("us", "UTC")

STORED = CANDLE_TABLES
"""Width -> stored candle table, whose name is also the statement that reads it."""

POSITION_SCHEMA: dict[str, Any] = {
    "account_id": pl.String, "symbol": pl.String, "qty": PRICE, "avg_px": PRICE,
    "mark": PRICE, "mark_ts": UTC_TIME, "realised_pnl": MONEY, "unrealised_pnl": MONEY,
    "commissions": MONEY, "opened_ts": UTC_TIME, "ts_last": UTC_TIME, "version": pl.Int64,
}
ALERT_SCHEMA: dict[str, Any] = {
    "alert_id": pl.String, "ts_event": UTC_TIME, "rule": pl.String, "severity": pl.String,
    "account_id": pl.String, "symbol": pl.String, "observed": MONEY, "limit_value": MONEY,
    "message": pl.String, "source_event_id": pl.String, "unit": pl.String,
}
PG_ALERT_SCHEMA: dict[str, Any] = {
    **ALERT_SCHEMA, "acknowledged_at": UTC_TIME, "acknowledged_by": pl.String,
    "ack_note": pl.String,
}
ALERT_SOURCES = ("clickhouse", "postgres")

TimeArg = datetime | str | None


class Analytics:
    """Read-only access to the stores. Clients open on first use and close with the object,
    so a ClickHouse-only question never starts Postgres, and the reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ch: Any = None
        self._pg: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._ch is not None:
            self._ch.close()
            self._ch = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    # -- ClickHouse --------------------------------------------------------------------------

    def candles(self, symbol: str, interval: str = "1m", start: TimeArg = None,
                end: TimeArg = None) -> pl.DataFrame:
        """Candles of one symbol whose bucket starts in [start, end), in bucket order.

        Columns: symbol, bucket, open, high, low, close, volume, notional, vwap, trade_count,
        version (the trade count, see `tapeflow.core.market.candles`)."""
        return self._candles([symbol], interval, TimeRange.of(start, end))

    def vwap(self, start: TimeArg = None, end: TimeArg = None,
             symbols: Sequence[str] = (), interval: str | None = None) -> pl.DataFrame:
        """Volume-weighted average price, exact, rounded half-even to 8 decimals.

        Without `interval`: one row per symbol over [start, end), from the clean trades (any
        boundaries, to the microsecond): symbol, first_trade, last_trade, volume, notional,
        vwap, trade_count. With `interval`: one row per symbol and bucket, from the candles of
        that interval (rolled up from 1m when coarser): symbol, bucket, volume, notional, vwap,
        trade_count. No symbols: every symbol that traded in the range."""
        span = TimeRange.of(start, end)
        if interval is None:
            return self._ch_frame("vwap_range", symbols=list(symbols), start_us=span.start_us,
                                  end_us=span.end_us)
        chosen = list(symbols) or self._ch_frame(
            "candle_symbols", start_us=span.start_us, end_us=span.end_us
        )["symbol"].to_list()
        frame = self._candles(chosen, interval, span)
        return frame.select("symbol", "bucket", "volume", "notional", "vwap", "trade_count")

    def rejects(self, start: TimeArg = None, end: TimeArg = None,
                symbols: Sequence[str] = ()) -> pl.DataFrame:
        """Rejected ticks counted by kind, reason and symbol (event time in [start, end)),
        most frequent first: kind, reason, symbol, rejected."""
        span = TimeRange.of(start, end)
        return self._ch_frame("rejects", symbols=list(symbols), start_us=span.start_us,
                              end_us=span.end_us)

    def pnl(self, account: str, start: TimeArg = None, end: TimeArg = None,
            symbol: str | None = None) -> pl.DataFrame:
        """P&L history of an account from `pnl_snapshots`, in time order: the account-level
        rows (cash, equity, realised and unrealised P&L), or one symbol's rows with `symbol`."""
        span = TimeRange.of(start, end)
        return self._ch_frame("pnl", account=account, symbol=symbol or "",
                              start_us=span.start_us, end_us=span.end_us)

    def alerts(self, account: str | None = None, *, rules: Sequence[str] = (),
               severity: str | None = None, start: TimeArg = None, end: TimeArg = None,
               source: str = "clickhouse") -> pl.DataFrame:
        """Risk alerts in time order. `severity` is a minimum (WARNING: WARNING and CRITICAL).
        `source="postgres"` reads the operational table, with its acknowledgement columns."""
        severities = severities_from(severity)
        span = TimeRange.of(start, end)
        if source == "postgres":
            return self._pg_frame("alerts", PG_ALERT_SCHEMA, account=account, rules=list(rules),
                                  severities=severities, start=_as_datetime(span.start_us),
                                  end=_as_datetime(span.end_us))
        if source != "clickhouse":
            raise QueryInputError(f"unknown alert source {source!r}; choose from "
                                  f"{', '.join(ALERT_SOURCES)}")
        return self._ch_frame("alerts", account=account or "", rules=list(rules),
                              severities=severities, start_us=span.start_us,
                              end_us=span.end_us)

    # -- Postgres ----------------------------------------------------------------------------

    def positions(self, account: str | None = None, symbol: str | None = None,
                  open_only: bool = False) -> pl.DataFrame:
        """Current positions from Postgres (one row per account and symbol), optionally one
        account's, one symbol's, or only those not flat."""
        return self._pg_frame("positions", POSITION_SCHEMA, account=account, symbol=symbol,
                              open_only=open_only)

    # -- plumbing ----------------------------------------------------------------------------

    def _candles(self, symbols: list[str], interval: str, span: TimeRange) -> pl.DataFrame:
        width = interval_us(interval)
        if width in STORED:
            return self._ch_frame(STORED[width], symbols=symbols, start_us=span.start_us,
                                  end_us=span.end_us)
        whole = span.aligned(width)
        return self._ch_frame("candles_rollup", symbols=symbols, width_us=width,
                              start_us=whole.start_us, end_us=whole.end_us)

    def _clickhouse(self) -> Any:
        if self._ch is None:
            self._ch = open_for_reading(self.settings)
        return self._ch

    def _ch_frame(self, name: str, **parameters: Any) -> pl.DataFrame:
        client = self._clickhouse()
        try:
            table = client.query_arrow(statement(CH_SQL, name), parameters=parameters)
        except ch_errors.DatabaseError as exc:
            if "UNKNOWN_TABLE" in str(exc):
                raise StoreUnavailableError(_not_initialised(
                    f"ClickHouse database {self.settings.clickhouse.database!r}")) from None
            raise
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        # LowCardinality columns arrive as Arrow dictionaries (polars Categorical): plain text
        # is what a user filters, joins and writes.
        return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))

    def _postgres(self) -> psycopg.Connection[Any]:
        if self._pg is None:
            settings = ensure_postgres(self.settings)
            assert settings.postgres.dsn is not None
            self._pg = connect_postgres(settings.postgres.dsn.get_secret_value(),
                                        settings.postgres.schema, autocommit=True)
        return self._pg

    def _pg_frame(self, name: str, schema: dict[str, Any], **parameters: Any) -> pl.DataFrame:
        try:
            rows = self._postgres().execute(statement(PG_SQL, name), parameters).fetchall()
        except psycopg.errors.UndefinedTable:
            raise StoreUnavailableError(_not_initialised(
                f"Postgres schema {self.settings.postgres.schema!r}")) from None
        return pl.DataFrame(rows, schema=schema, orient="row")


def _not_initialised(where: str) -> str:
    return f"the {where} has no Tapeflow tables; run `tapeflow init` first"


def _as_datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


__all__ = ["ALERT_SOURCES", "INTERVALS", "Analytics"]
