"""Named SQL statements kept in files under `schemas/`, not in string literals in the code.

A file holds statements that each start at a line `-- name: <name>`; other full-line comments
are dropped (a `%` in a comment would otherwise be read as a parameter by psycopg). Sinks and
jobs both read their SQL this way, so every statement the project sends is in one folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

SCHEMA_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")


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
def load(relative: str) -> Mapping[str, str]:
    """Every named statement of `schemas/<relative>`, parsed once per process."""
    return MappingProxyType(parse_statements((SCHEMA_DIR / relative).read_text()))


def statement(relative: str, name: str) -> str:
    """One statement by name; a missing one names the file and what it holds."""
    found = load(relative)
    if name not in found:
        raise KeyError(f"no statement {name!r} in schemas/{relative}; it has: "
                       f"{', '.join(sorted(found))}")
    return found[name]
