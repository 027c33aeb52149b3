"""What the live view reads from the stores when a page opens (the live part comes pushed,
`tapeflow.web.live`). Named, bound statements from `schemas/queries/live_*.sql`; candles
through the analytics API, so a page shows exactly what `tapeflow query candles` answers."""

from __future__ import annotations

import threading
from typing import Any

from jobs.query import Analytics
from jobs.store_lock import open_for_reading
from schemas.sql_files import statement
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tapeflow.web.live import EPOCH, PG_SQL, jsonable

CH_SQL = "queries/live_clickhouse.sql"


class StoreReads:
    """One Postgres connection and one ClickHouse client for the server, used under a lock
    (requests are short, and the embedded engine is one per process anyway)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._pg: Any = None
        self._ch: Any = None

    def _postgres(self) -> Any:
        if self._pg is None or self._pg.closed:
            dsn = self._settings.postgres_url()
            if dsn is None:
                raise RuntimeError("no Postgres DSN for the live view")
            self._pg = connect_postgres(dsn, self._settings.postgres.schema, autocommit=True)
        return self._pg

    def _clickhouse(self) -> Any:
        if self._ch is None:
            self._ch = open_for_reading(self._settings)
        return self._ch

    def _pg_rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._postgres().execute(statement(PG_SQL, name), params)
            names = [c.name for c in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        for row in rows:
            row.pop("updated_at", None)
        return [{k: jsonable(v) for k, v in row.items()} for row in rows]

    def _ch_rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        with self._lock:
            result = self._clickhouse().query(statement(CH_SQL, name), parameters=params)
        return [{k: jsonable(v) for k, v in zip(result.column_names, row, strict=True)}
                for row in result.result_rows]

    def accounts(self, allowed: frozenset[str] | None) -> list[dict[str, Any]]:
        return self._pg_rows("accounts", accounts=_list(allowed), since=EPOCH)

    def positions(self, account: str, allowed: frozenset[str] | None) -> list[dict[str, Any]]:
        return self._pg_rows("positions", accounts=_list(allowed), account=account, since=EPOCH)

    def alerts(self, allowed: frozenset[str] | None, limit: int = 500) -> list[dict[str, Any]]:
        rows = self._pg_rows("alerts", accounts=_list(allowed), limit=limit)
        if allowed is not None:  # alerts without an account are withheld, as in subscriptions
            rows = [r for r in rows if r["account_id"] is not None]
        return rows

    def symbols(self) -> list[str]:
        return [str(r["symbol"]) for r in self._ch_rows("symbols")]

    def symbol_summary(self, symbol: str) -> dict[str, Any]:
        last = self._ch_rows("last_trade", symbol=symbol)
        return {"symbol": symbol, "last": last[0] if last else None,
                "rejects": self._ch_rows("rejects_by_reason", symbol=symbol)}

    def candles(self, symbol: str, interval: str, start: str | None,
                end: str | None) -> list[dict[str, Any]]:
        with self._lock, Analytics(self._settings) as analytics:
            frame = analytics.candles(symbol, interval, start, end)
        return [{k: jsonable(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
            if self._ch is not None:
                self._ch.close()


def _list(allowed: frozenset[str] | None) -> list[str] | None:
    return None if allowed is None else sorted(allowed)
