"""Every SQL statement binds its values: a static scan of the code that talks to the stores.

Values reach SQL only as bound parameters (psycopg `%s`/`%(name)s` placeholders, clickhouse-connect
`parameters=`/`{name:Type}`, `client.insert` rows) and identifiers only through
`psycopg.sql.Identifier` or ClickHouse's `{name:Identifier}` parameter. Statements live in
`schemas/**/*.sql` and are loaded by name. This test parses every module of sinks/, jobs/,
sources/, flows/ and schemas/ and refuses:

1. an f-string, `%` formatting, `.format()` or `+` concatenation whose literal text looks like
   SQL (a keyword such as SELECT, INSERT, WHERE, VALUES...), wherever it is used;
2. a call to a statement-running method (`execute`, `executemany`, `command`, `query*`,
   `copy`, ...) whose statement is built by any of those operations;
3. `psycopg.sql.SQL(...)` over anything but a string literal (one reviewed exception: the
   statements read from `schemas/postgres/statements.sql`), and `.format(...)` on it with
   anything but `sql.Identifier`, `sql.Literal` or `sql.Placeholder`;
4. in the SQL files, any `{...}` other than a ClickHouse `{name:Type}` parameter (a Postgres
   statement wrapped in `sql.SQL` would turn it into a slot for pasted text).

The checker is itself tested on good and bad snippets, so a scan that finds nothing means
something.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("sinks", "jobs", "sources", "flows", "schemas", "tapeflow")
RUNS_SQL = {"execute", "executemany", "command", "query", "query_df", "query_arrow", "query_np",
            "query_rows", "raw_query", "copy", "stream"}
SAFE_SQL_PARTS = {"Identifier", "Literal", "Placeholder"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|TRUNCATE|WHERE|"
                       r"VALUES|FROM|JOIN|GRANT|SET search_path)\b")


def _literal_text(node: ast.AST) -> str:
    """The constant string parts of an expression that builds a string."""
    return " ".join(n.value for n in ast.walk(node)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _built_string(node: ast.AST) -> bool:
    """An f-string with values, `"..." % x`, `"...".format(x)` or a concatenation."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return any(isinstance(side, ast.Constant | ast.JoinedStr | ast.BinOp)
                   for side in (node.left, node.right))
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format" and isinstance(node.func.value, ast.Constant))


def _is_sql_sql(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "SQL" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "sql")


SQL_OF_NON_LITERAL = {
    "tapeflow/services/postgres_sql.py":
        "wraps the named statements of schemas/postgres/statements.sql",
}
"""Modules allowed to call `sql.SQL` over a non-literal, and why (rule 3)."""


def problems(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if _built_string(node) and SQL_WORDS.search(_literal_text(node)):
            found.append(f"{line}: SQL text built from values")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in RUNS_SQL and node.args and _built_string(node.args[0]):
                found.append(f"{line}: {node.func.attr}() of a statement built from values")
            if node.func.attr == "format" and _is_sql_sql(node.func.value):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    ok = (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                          and arg.func.attr in SAFE_SQL_PARTS)
                    if not ok:
                        found.append(f"{line}: sql.SQL.format() with a raw value")
        if _is_sql_sql(node):
            assert isinstance(node, ast.Call)
            literal = node.args and isinstance(node.args[0], ast.Constant)
            if not literal and where not in SQL_OF_NON_LITERAL:
                found.append(f"{line}: sql.SQL() over a non-literal")
    return found


def _modules() -> list[Path]:
    return sorted(p for d in SCANNED for p in (REPO / d).rglob("*.py"))


def test_the_scan_covers_the_store_code() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _modules()}
    assert {"sinks/postgres/writer.py", "sinks/clickhouse/writer.py", "jobs/init.py",
            "jobs/migrate.py", "jobs/reconcile.py", "sources/clickhouse/audit_trail.py"} <= names


def test_sql_files_have_no_text_slots() -> None:
    files = sorted((REPO / "schemas").rglob("*.sql"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text()
        slots = re.findall(r"\{[^}]*\}", text)
        assert all(re.fullmatch(r"\{\w+:\w+(\(.*\))?\}", s) for s in slots), (path, slots)
        if "postgres" in path.as_posix():
            assert slots == [], path


def test_no_statement_is_built_from_values() -> None:
    found = [p for path in _modules()
             for p in problems(path.read_text(), path.relative_to(REPO).as_posix())]
    assert found == []


BAD = [
    'conn.execute(f"SELECT * FROM t WHERE a = {a}")',
    'q = f"DELETE FROM orders WHERE id = {order_id}"',
    'client.query("SELECT * FROM %s" % table)',
    'conn.execute("UPDATE t SET a = {}".format(a))',
    'conn.execute("SELECT * FROM t WHERE a = " + a)',
    'client.command(f"CREATE DATABASE `{name}`")',
    'conn.execute(f"{verb} x")',
    'conn.execute(sql.SQL("SELECT * FROM {}").format(name))',
    'conn.execute(sql.SQL(text))',
    'conn.execute(sql.SQL(f"SELECT {x}"))',
]
GOOD = [
    'conn.execute("SELECT * FROM t WHERE a = %s", (a,))',
    'conn.execute(statement("select_risk_limits"))',
    'conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))',
    'client.command("CREATE DATABASE {db:Identifier}", parameters={"db": name})',
    'client.query("SELECT * FROM t WHERE s = {s:String}", parameters={"s": s})',
    'raise ValueError(f"{table}.{column} = {value} does not fit")',
    'log.info("select %s from the menu", x)',
]


@pytest.mark.parametrize("snippet", BAD)
def test_the_checker_refuses(snippet: str) -> None:
    assert problems(snippet, "snippet")


@pytest.mark.parametrize("snippet", GOOD)
def test_the_checker_allows(snippet: str) -> None:
    assert problems(snippet, "snippet") == []
