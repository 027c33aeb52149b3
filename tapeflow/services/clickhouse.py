"""Opening ClickHouse, one code path whatever the deployment.

`chdb:///path` opens the embedded engine in-process, `http(s)://...` a server;
clickhouse-connect gives the same client API for both.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from tapeflow.errors import StoreUnavailableError
from tapeflow.extras import require
from tapeflow.services.dsn import redact


def open_clickhouse(url: str, database: str | None = None, **settings: Any) -> Any:
    """A clickhouse-connect client; `database` must already exist unless None."""
    if url.startswith("chdb://"):
        require("chdb")
    try:
        if url.startswith("chdb://"):
            return clickhouse_connect.get_client(dsn=url, database=database, **settings)
        return clickhouse_connect.get_client(dsn=url, database=database or "__default__",
                                             connect_timeout=5, **settings)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Cannot lock file" in text or "already running" in text:
            raise StoreUnavailableError(
                f"the embedded ClickHouse at {redact(url)} is held by another process (a running "
                "flow?). Stop it, or use a ClickHouse server (TAPEFLOW_CLICKHOUSE_DSN=http://...)."
            ) from None
        raise StoreUnavailableError(f"ClickHouse at {redact(url)} did not answer: {text}") from None
