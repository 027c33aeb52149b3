"""The Postgres sinks' SQL, read from `schemas/postgres/statements.sql` by name.

Why a file and not string literals: the statements are the contract with the DDL next to
them (`0001_init.sql`), so they are reviewed, diffed and tested together, and a reader finds
every statement the sinks send in one place. Each statement starts at a line
`-- name: <name>`; full-line comments are dropped (a `%` in a comment would otherwise be
taken for a parameter by psycopg). Statements are parsed once, at first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

from psycopg import sql

STATEMENTS_FILE = Path(__file__).resolve().parent.parent / "schemas" / "postgres" / "statements.sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
_PARAM = re.compile(r"%\((\w+)\)s")


def parse_statements(text: str) -> dict[str, str]:
    """Named statements of a SQL file: `-- name: x` lines start one; comments are dropped."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match:
            name = match.group(1)
            if name in found:
                raise ValueError(f"statement {name!r} is defined twice")
            current = found[name] = []
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    statements = {name: "\n".join(lines).strip().rstrip(";").strip()
                  for name, lines in found.items()}
    empty = [name for name, body in statements.items() if not body]
    if empty:
        raise ValueError(f"empty statements: {', '.join(empty)}")
    return statements


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
