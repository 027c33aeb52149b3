"""Connections to the two stores, one code path whatever the deployment.

ClickHouse: `chdb:///path` opens the embedded engine in-process, `http(s)://...` a server;
clickhouse-connect gives the same client API for both. Postgres: any libpq DSN; the schema is
put first on the search_path so the SQL files and the sinks use unqualified table names.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import psycopg
from psycopg import sql


class StoreUnavailableError(RuntimeError):
    """A store did not answer; the message names which one and where."""


_SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword")
_KEYWORD_SECRET = re.compile(
    r"(\b(?:password|passwd|pwd|sslpassword)\s*=\s*)"  # key =
    r"('(?:[^'\\]|\\.)*'|\S+)",  # 'quoted, with \' escapes' or a bare word
    re.IGNORECASE)


def _redact(dsn: str) -> str:
    """A DSN without its secrets, for messages: the password of a URL's user info, password
    query parameters, and `password=...` pairs of a libpq keyword DSN."""
    if "://" not in dsn:
        return _KEYWORD_SECRET.sub(r"\1***", dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        netloc = f"{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else netloc
    query = "&".join(
        f"{key}=***" if key.lower() in _SECRET_KEYS else pair
        for pair in parts.query.split("&") if pair
        for key in [pair.split("=", 1)[0]]
    )
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def open_clickhouse(url: str, database: str | None = None, **settings: Any) -> Any:
    """A clickhouse-connect client; `database` must already exist unless None."""
    try:
        if url.startswith("chdb://"):
            return clickhouse_connect.get_client(dsn=url, database=database, **settings)
        return clickhouse_connect.get_client(dsn=url, database=database or "__default__",
                                             connect_timeout=5, **settings)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Cannot lock file" in text or "already running" in text:
            raise StoreUnavailableError(
                f"the embedded ClickHouse at {url} is held by another process (a running flow?). "
                "Stop it, or use a ClickHouse server (TAPEFLOW_CLICKHOUSE_DSN=http://...)."
            ) from None
        where = _redact(url)
        raise StoreUnavailableError(f"ClickHouse at {where} did not answer: {text}") from None


def connect_postgres(dsn: str, schema: str, *, autocommit: bool = False,
                     connect_timeout: int = 5) -> psycopg.Connection[Any]:
    """A psycopg connection with `schema` first on the search_path."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else "no answer"
        raise StoreUnavailableError(f"Postgres at {_redact(dsn)} did not answer: {first}") from None
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    if not autocommit:
        conn.commit()
    return conn
