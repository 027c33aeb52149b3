"""Versioned schema migrations for ClickHouse and Postgres, from the SQL files in `schemas/`.

A file `NNNN_name.sql` is applied once and recorded in the store's `schema_migrations` table
with a checksum. Running again applies only what is new, so `tapeflow init` is idempotent; an
applied file whose content changed is refused, because silently diverging schemas are worse
than a clear stop.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from tapeflow.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(UserError, RuntimeError):
    """A migration could not be applied; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations(store: str) -> list[Migration]:
    """The migration files of one store ('clickhouse' or 'postgres'), in version order."""
    found = []
    for path in sorted((SCHEMA_DIR / store).glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    return found


def split_statements(text: str) -> list[str]:
    """Statements of a SQL file: full-line comments dropped, split on ';'."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def _check_applied(store: str, m: Migration, applied: dict[int, str]) -> bool:
    if m.version not in applied:
        return False
    if applied[m.version] != m.checksum:
        raise MigrationError(
            f"{store} migration {m.path.name} was changed after it was applied; add a new "
            "migration file instead of editing an applied one"
        )
    return True


def migrate_clickhouse(client: Any) -> list[str]:
    """Apply new migrations through a client bound to the target database.

    Returns the files applied (empty when the schema was already current).
    """
    client.command((SCHEMA_DIR / "clickhouse" / "migrations_table.sql").read_text())
    rows = client.query("SELECT version, checksum FROM schema_migrations FINAL").result_rows
    applied = {int(v): str(c) for v, c in rows}
    done = []
    for m in migrations("clickhouse"):
        if _check_applied("ClickHouse", m, applied):
            continue
        for statement in split_statements(m.text):
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"ClickHouse {m.path.name}: {exc}") from exc
        client.insert("schema_migrations", [[m.version, m.name, m.checksum]],
                      column_names=["version", "name", "checksum"])
        done.append(m.path.name)
    return done


def migrate_postgres(conn: Any, schema: str) -> list[str]:
    """Create `schema` if needed and apply new migrations, each in its own transaction."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        conn.execute((SCHEMA_DIR / "postgres" / "migrations_table.sql").read_text())
    done = []
    for m in migrations("postgres"):
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            # Serialise concurrent `init`s on one database.
            conn.execute("SELECT pg_advisory_xact_lock(7470616566)")
            rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            if _check_applied("Postgres", m, {int(v): str(c) for v, c in rows}):
                continue
            try:
                conn.execute(m.text)
            except Exception as exc:
                raise MigrationError(f"Postgres {m.path.name}: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
        done.append(m.path.name)
    return done
