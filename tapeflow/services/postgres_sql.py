"""The Postgres statements of the sinks and readers, read from `schemas/postgres/statements.sql` by
name.

Why a file and not string literals: the statements are the contract with the DDL next to
them (`0001_init.sql`), so they are reviewed, diffed and tested together, and a reader finds
every statement the sinks send in one place. The file format is `schemas.sql_files`'
(`-- name: <name>` starts a statement); statements are parsed once, at first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from psycopg import sql

from schemas.sql_files import SCHEMA_DIR, parse_statements

STATEMENTS_FILE = SCHEMA_DIR / "postgres" / "statements.sql"
_PARAM = re.compile(r"%\((\w+)\)s")


@cache
def statements() -> Mapping[str, sql.SQL]:
    """Every named statement of `STATEMENTS_FILE`, ready to execute."""
    parsed = parse_statements(STATEMENTS_FILE.read_text())
    return MappingProxyType({name: sql.SQL(body) for name, body in parsed.items()})


def statement(name: str) -> sql.SQL:
    """One statement by name; a missing one names the file and what it holds."""
    try:
        return statements()[name]
    except KeyError:
        known = ", ".join(sorted(statements()))
        raise KeyError(f"no statement {name!r} in {STATEMENTS_FILE.name}; it has: {known}") \
            from None


def parameters(name: str) -> tuple[str, ...]:
    """The named parameters of a statement, in order of first use (for checks and tests)."""
    text = parse_statements(STATEMENTS_FILE.read_text())[name]
    return tuple(dict.fromkeys(_PARAM.findall(text)))
