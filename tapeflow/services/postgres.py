"""Connecting to Postgres: any libpq DSN, with the configured schema first on the search_path,
so the SQL files and the adapters use unqualified table names."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tapeflow.errors import StoreUnavailableError
from tapeflow.services.dsn import postgres_parts, redact


def connect_postgres(dsn: str, schema: str, *, autocommit: bool = False,
                     connect_timeout: int = 5) -> psycopg.Connection[Any]:
    """A psycopg connection with `schema` first on the search_path.

    The DSN is read first (`DsnError`, a user error, when libpq cannot read it: psycopg's own
    message would quote the text around the mistake, which may be the password)."""
    postgres_parts(dsn)
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else "no answer"
        raise StoreUnavailableError(f"Postgres at {redact(dsn)} did not answer: {first}") from None
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    if not autocommit:
        conn.commit()
    return conn
