"""The Postgres writer's errors: what failed, and what can fix it (a retry, or nothing).

`is_transient`: the same transaction may succeed when sent again (retried up to the writer's
deadline). `refuses_value`: the store refused the values of some row, so the batch without that
row would go in (the sink partitions isolate such rows, `sinks/isolation.py`). Anything else
(a missing table, a permission) needs an operator.
"""

from __future__ import annotations

import psycopg

from tapeflow.errors import StoreError, StoreUnavailableError

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
"""Serialization failure and deadlock: the same transaction may succeed when sent again."""


class PostgresWriteError(StoreError, RuntimeError):
    """A batch could not be written. Its rows are still buffered in the writer.

    `refused_value`: Postgres (or psycopg, before sending) refused some row's values, so the
    batch without that row would go in (`refuses_value`)."""

    def __init__(self, message: str, *, rows: int, attempts: int, transient: bool,
                 sqlstate: str | None, refused_value: bool = False) -> None:
        super().__init__(message)
        self.rows = rows
        self.attempts = attempts
        self.transient = transient
        self.sqlstate = sqlstate
        self.refused_value = refused_value


def refuses_value(exc: BaseException | None) -> bool:
    """Whether a write failed on the values of some row: a data exception (SQLSTATE class 22:
    a NUL in text, a value out of range, a bad encoding; psycopg raises it before sending for
    a NUL), an integrity constraint (class 23: a CHECK an operator added, NOT NULL), a value
    too large for an index row (54000), or text Python cannot encode (a lone surrogate)."""
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | UnicodeError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate[:2] in ("22", "23") or sqlstate == "54000"


def is_transient(exc: BaseException) -> bool:
    """Whether sending the same transaction again can help."""
    if isinstance(exc, StoreUnavailableError | psycopg.OperationalError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith("08") or sqlstate in RETRYABLE_SQLSTATES
