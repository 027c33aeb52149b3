"""The Postgres trading sink against real (embedded) Postgres: exact round trips, idempotent
replays guarded by version, append-only logs, operator acknowledgements, atomic batches,
retries on connection-level errors, and the risk-limit and instrument loaders.

Each test gets a schema of its own, created by `tapeflow init`'s code path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from jobs.init import init_postgres
from sinks.postgres.rows import (
    MAX_N18,
    MAX_N38,
    MAX_TS_US,
    MIN_TS_US,
    TABLE_COLUMNS,
    TABLE_KEYS,
    VERSIONED_TABLES,
    Row,
    alert_row,
    position_row,
    trading_rows,
)
from sinks.postgres.writer import PostgresWriteError, PostgresWriter
from sources.postgres.reference import (
    Instrument,
    ReferenceDataError,
    load_instruments,
    load_risk_limits,
)
from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.positions import Position
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.postgres_scenario import scenario
from tests.support.trading_builders import T0

ALL_COLUMNS = "*"


@pytest.fixture
def schema(postgres_dsn: str, session_id: str, tmp_path: Path) -> str:
    """A fresh schema made by `tapeflow init`'s code path. Settings are built here rather than
    taken from the `settings` fixture, which starts the Kafka broker these tests never use."""
    name = f"tf_{session_id}_pw{uuid.uuid4().hex[:6]}"
    settings = Settings(home=tmp_path / "home", postgres_dsn=postgres_dsn, postgres_schema=name)
    init_postgres(settings, postgres_dsn)
    return name


@pytest.fixture
def db(postgres_dsn: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A reader/admin connection to the test's schema, in UTC."""
    with connect_postgres(postgres_dsn, schema, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def _writer(dsn: str, schema: str, **kwargs: Any) -> PostgresWriter:
    """A writer whose session is *not* in UTC: aware datetimes must not care."""

    def connect() -> psycopg.Connection[Any]:
        conn = connect_postgres(dsn, schema)
        conn.execute("SET TIME ZONE 'America/New_York'")
        return conn

    kwargs.setdefault("sleep", lambda _s: None)
    return PostgresWriter(connect, store=f"Postgres test {schema}", **kwargs)


def _rows() -> list[tuple[str, Row]]:
    return [pair for step in scenario() for pair in trading_rows(step.output, step.report)]


def _expected(rows: list[tuple[str, Row]]) -> dict[str, list[Row]]:
    """What the store must hold: the highest version per key, or the first row per key."""
    held: dict[str, dict[tuple[Any, ...], Row]] = {t: {} for t in TABLE_COLUMNS}
    for table, row in rows:
        key = tuple(row[c] for c in TABLE_KEYS[table])
        old = held[table].get(key)
        if old is None or (table in VERSIONED_TABLES and row["version"] > old["version"]):
            held[table][key] = row
    return {t: [by_key[k] for k in sorted(by_key)] for t, by_key in held.items()}


def _read(db: psycopg.Connection[Any], table: str, columns: str | None = None) -> list[Row]:
    cols = TABLE_COLUMNS[table]
    select = sql.SQL(ALL_COLUMNS) if columns == ALL_COLUMNS else sql.SQL(", ").join(
        map(sql.Identifier, cols))
    order = sql.SQL(", ").join(map(sql.Identifier, TABLE_KEYS[table]))
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(select, sql.Identifier(table), order)
    cur = db.execute(query)
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, record, strict=True)) for record in cur.fetchall()]


def _state(db: psycopg.Connection[Any]) -> dict[str, list[Row]]:
    """Every column of every sink table, including updated_at and logged_at."""
    return {table: _read(db, table, ALL_COLUMNS) for table in TABLE_COLUMNS}


def _write(dsn: str, schema: str, rows: list[tuple[str, Row]], **kwargs: Any) -> PostgresWriter:
    with _writer(dsn, schema, **kwargs) as writer:
        writer.add_many(rows)
    return writer


def test_every_row_round_trips_exactly(postgres_dsn: str, schema: str,
                                       db: psycopg.Connection[Any]) -> None:
    extreme = Position("ACC-X", "BIG", MAX_N18, MAX_N18 * 3, MAX_N38 * ONE, MAX_N38,
                       -MAX_N18, MIN_TS_US, MIN_TS_US, MAX_TS_US, 2**63 - 1)
    rows = [*_rows(), ("positions", position_row(extreme))]
    writer = _write(postgres_dsn, schema, rows)
    expected = _expected(rows)
    assert writer.rows_written == sum(len(r) for r in expected.values())
    for table in TABLE_COLUMNS:
        stored = _read(db, table)
        assert stored == expected[table], table
        for row in stored:
            for value in row.values():
                assert not isinstance(value, float)
                assert getattr(value, "tzinfo", True) is not None  # aware, never naive
    (big,) = [p for p in _read(db, "positions") if p["account_id"] == "ACC-X"]
    assert big["realised_pnl"] == Decimal("9" * 30 + "." + "9" * 8)
    assert big["mark_ts"].year == 1 and big["ts_last"].year == 9999


def test_writing_the_same_batch_twice_leaves_the_same_state(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    rows = _rows()
    _write(postgres_dsn, schema, rows)
    before = _state(db)
    _write(postgres_dsn, schema, rows)
    assert _state(db) == before  # updated_at too: an equal version updates nothing


def test_an_older_version_never_overwrites_a_newer_one(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    rows = _rows()
    _write(postgres_dsn, schema, rows)
    latest = _state(db)
    # Replay: every step again, each its own flush, oldest first (what a restored flow does).
    with _writer(postgres_dsn, schema, max_rows=1) as writer:
        writer.add_many(rows)
    assert writer.batches_written == len(rows)
    assert _state(db) == latest
    positions = _read(db, "positions")
    assert [p["version"] for p in positions] == [5]
    # Within one buffer an older version added later is not sent either.
    with _writer(postgres_dsn, schema) as writer:
        writer.add_many(reversed(rows))
        assert writer.pending == sum(len(r) for r in _expected(rows).values())
    assert _state(db) == latest


def test_alert_acknowledgement_survives_a_replayed_insert(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    rows = _rows()
    _write(postgres_dsn, schema, rows)
    db.execute("UPDATE alerts SET acknowledged_at = now(), acknowledged_by = 'ops', "
               "ack_note = 'seen, O''Brien'")
    acked = _read(db, "alerts", ALL_COLUMNS)
    assert acked and all(a["acknowledged_by"] == "ops" for a in acked)
    changed = [(t, {**r, "message": "replayed"} if t == "alerts" else r) for t, r in rows]
    _write(postgres_dsn, schema, changed)
    assert _read(db, "alerts", ALL_COLUMNS) == acked


def test_execution_log_keeps_the_first_outcome(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    rows = [(t, r) for t, r in _rows() if t == "execution_log"]
    first = rows[0][1]
    assert first["outcome"] == "applied"
    _write(postgres_dsn, schema, rows)
    logged = _read(db, "execution_log", ALL_COLUMNS)
    relabelled = {**first, "outcome": "duplicate", "outcome_detail": "exec_id already applied"}
    _write(postgres_dsn, schema, [("execution_log", relabelled)])
    assert _read(db, "execution_log", ALL_COLUMNS) == logged
    assert len(logged) == len({r["exec_id"] for _, r in rows})
    # The scenario's duplicate re-sends an applied exec_id: its first (applied) row stays.
    assert {r["outcome"] for r in logged} == {"applied", "invalid"}


def test_a_failing_row_rolls_back_the_whole_batch_and_stays_buffered(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("ALTER TABLE alerts ADD CONSTRAINT no_poison CHECK (rule <> 'poison')")
    poison = RiskAlert("p1", "poison", Severity.INFO, None, None, T0, None, None, "x", "e")
    rows = [*_rows(), ("alerts", alert_row(poison))]
    writer = _writer(postgres_dsn, schema, attempts=3)
    writer.add_many(rows)
    pending = writer.pending
    with pytest.raises(PostgresWriteError, match="not retryable") as info:
        writer.flush()
    assert info.value.sqlstate == "23514" and not info.value.transient
    assert isinstance(info.value.__cause__, errors.CheckViolation)
    assert "Postgres test" in str(info.value) and writer.retries == 0
    assert all(_read(db, table) == [] for table in TABLE_COLUMNS)
    assert writer.pending == pending
    db.execute("ALTER TABLE alerts DROP CONSTRAINT no_poison")
    assert writer.flush() == pending
    writer.close()
    assert len(_read(db, "alerts")) == len(_expected(rows)["alerts"])


def test_a_dropped_connection_is_retried_on_a_new_one(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    rows = _rows()
    sleeps: list[float] = []
    writer = _writer(postgres_dsn, schema, sleep=sleeps.append, backoff_s=0.01)
    writer.add_many(rows[:2])
    writer.flush()
    pid = writer._connection().info.backend_pid
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    writer.add_many(rows[2:])
    pending = writer.pending
    with caplog.at_level(logging.WARNING, logger="tapeflow.sinks.postgres"):
        assert writer.flush() == pending
    assert writer.retries == 1 and len(sleeps) == 1
    assert f"Postgres test {schema}: write of {pending} rows failed (attempt 1, gives " \
        "up after 5 attempts): AdminShutdown [SQLSTATE 57P01]" in caplog.text
    assert "next attempt in 0.0 s" in caplog.text
    assert writer._connection().info.backend_pid != pid
    writer.close()
    expected = _expected(rows)
    assert all(_read(db, table) == expected[table] for table in TABLE_COLUMNS)


def test_a_store_that_does_not_answer_is_retried(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    calls: list[int] = []

    def flaky() -> psycopg.Connection[Any]:
        calls.append(1)
        if len(calls) == 1:
            return connect_postgres("postgresql://nobody@127.0.0.1:1/none", schema,
                                    connect_timeout=1)
        return connect_postgres(postgres_dsn, schema)

    rows = _rows()
    with PostgresWriter(flaky, sleep=lambda _s: None) as writer:
        writer.add_many(rows)
    assert writer.retries == 1 and len(calls) == 2
    assert _read(db, "orders") == _expected(rows)["orders"]


def _refuse_accounts(db: psycopg.Connection[Any], sqlstate: str) -> None:
    """A trigger that makes Postgres raise `sqlstate` on accounts while refuse.on is true."""
    db.execute("CREATE TABLE refuse (on_ boolean NOT NULL)")
    db.execute("INSERT INTO refuse VALUES (true)")
    db.execute(sql.SQL(
        "CREATE FUNCTION refuse_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF (SELECT on_ FROM refuse) THEN RAISE EXCEPTION 'refused' USING ERRCODE = {}; "
        "END IF; RETURN NEW; END $$").format(sql.Literal(sqlstate)))
    db.execute("CREATE TRIGGER refuse_tr BEFORE INSERT ON accounts "
               "FOR EACH ROW EXECUTE FUNCTION refuse_fn()")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any], sqlstate: str
) -> None:
    _refuse_accounts(db, sqlstate)
    rows = _rows()

    def pressure_goes_away(_seconds: float) -> None:
        db.execute("UPDATE refuse SET on_ = false")

    writer = _write(postgres_dsn, schema, rows, sleep=pressure_goes_away)
    assert writer.retries == 1
    expected = _expected(rows)
    assert all(_read(db, table) == expected[table] for table in TABLE_COLUMNS)


def test_persistent_transient_errors_give_up_with_the_batch_kept(
    postgres_dsn: str, schema: str, db: psycopg.Connection[Any]
) -> None:
    _refuse_accounts(db, "40001")
    writer = _writer(postgres_dsn, schema, attempts=3)
    writer.add_many(_rows())
    pending = writer.pending
    with pytest.raises(PostgresWriteError, match="failed 3 times") as info:
        writer.flush()
    assert info.value.transient and info.value.sqlstate == "40001" and writer.retries == 2
    assert writer.pending == pending and _read(db, "orders") == []
    db.execute("UPDATE refuse SET on_ = false")
    writer.close()
    assert _read(db, "orders") != []


def test_size_and_time_bounds(postgres_dsn: str, schema: str) -> None:
    rows = _rows()
    writer = _writer(postgres_dsn, schema, max_rows=3, max_age_s=5.0)
    assert writer.add_many(rows[:2], now=0.0) == 0 and writer.pending == 2
    assert writer.add(*rows[2], now=1.0) == 3 and writer.pending == 0
    writer.add(*rows[3], now=10.0)
    assert writer.flush_if_due(now=14.9) == 0
    assert writer.flush_if_due(now=15.0) == 1
    with pytest.raises(KeyError, match="known tables"):
        writer.add("trades", {})
    writer.close()


def test_risk_limits_load_with_default_and_overrides(db: psycopg.Connection[Any]) -> None:
    assert load_risk_limits(db) == RiskLimitBook(RiskLimits(), {})
    db.execute(
        "INSERT INTO risk_limits (account_id, warn_bps, max_order_qty, max_order_notional, "
        "price_collar_bps, max_leverage, max_mark_age_us, session_fill_severity) VALUES "
        "('ACC-9', 9000, NULL, 123456789012345678901234567890.12345678, NULL, 2.5, NULL, "
        "'WARNING')")
    db.execute("INSERT INTO risk_symbol_limits VALUES ('ACC-9', 'XYZ', 10.5), "
               "('ACC-9', 'ABC', 0.00000001), ('*', 'XYZ', 7)")
    book = load_risk_limits(db)
    assert book.default == RiskLimits(symbol_position_qty=(("XYZ", 7 * ONE),))
    assert book.overrides == {"ACC-9": RiskLimits(
        warn_bps=9000, max_order_qty=None,
        max_order_notional=12345678901234567890123456789012345678, price_collar_bps=None,
        max_leverage=to_units("2.5"), max_mark_age_us=None,
        session_fill_severity=Severity.WARNING,
        symbol_position_qty=(("ABC", 1), ("XYZ", to_units("10.5"))),
    )}
    assert book.for_account("ACC-9").position_limit("XYZ") == to_units("10.5")
    assert book.for_account("other").position_limit("XYZ") == 7 * ONE
    db.execute("DELETE FROM risk_limits WHERE account_id = '*'")
    with pytest.raises(ReferenceDataError, match="no default row"):
        load_risk_limits(db)


def test_instruments_load_exactly(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO instruments (symbol, tick_size, lot_size, session_open, "
               "session_close, price_band_pct) VALUES "
               "('XYZ', 0.01, 1, '14:30', '21:00', 7.5), "
               "('FX1', 0.00001, 1000, '22:00:00.5', '21:59', 10)")
    found = load_instruments(db)
    assert found == {
        "FX1": Instrument("FX1", 1_000, 1_000 * ONE, 79_200_500_000, 79_140_000_000, 10 * ONE),
        "XYZ": Instrument("XYZ", ONE // 100, ONE, 52_200_000_000, 75_600_000_000,
                          to_units("7.5")),
    }
    assert found["XYZ"].session_hours().is_open(T0)  # 2026-01-05 14:30 UTC, a Monday
