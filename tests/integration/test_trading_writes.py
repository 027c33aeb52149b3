"""Differential test of the trading flow's batched writes (issue 12): writing the latest state
per key, in batches, leaves Postgres and ClickHouse exactly as writing every state would.

Input: a synthetic order flow (re-sent reports included) folded through the pure shard step
with marks every 0.2 s of event time, timer ticks and the end of input, so positions and
accounts change many times between two flushes (marks revalue every holder), orders several
times (NEW, fills), and P&L snapshots are re-emitted; mixed into it, FIX 4.4 orders (a fill
during a pending replace, a replace above the order-size limit, a trade bust and a correction
naming their execution by ExecRefID, a pending cancel), and cash movements on oms.cash
(deposits, withdrawals and fees, one re-sent, one in a currency not the account's, an account
in EUR), so every table and column of issue 13 is written too. Both paths get the same
outputs, with the same restart version base:

- reference, every state: each Postgres row of every output (`sinks.postgres.flow_sink.
  _postgres_rows`, the mapping the flow used before) written on its own, in order, one
  transaction per row (the version guards and first-wins rules decide); every ClickHouse record
  mapped row by row (`clickhouse_trading_mapper`) and inserted, in order;
- under test: the flow's writers (`PostgresWriter.add_output`, latest state per key, rows built
  at the flush, COPY + one upsert, and also the executemany method;
  `TradingClickHouseWriter`, Arrow tables, the latest snapshot per key), flushed at several
  batch boundaries: everything in one batch, batches of 37 outputs, of 1 (executemany only:
  COPY's two statements per table make one-output flushes slow, and the flow never does them).

Compared: every column of every table except the bookkeeping timestamps the stores stamp
(`updated_at`, `logged_at`, `created_at`, `ingested_at`); ClickHouse read with FINAL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from flows.trading import _clickhouse_records
from jobs.init import init_clickhouse, init_postgres
from sinks.clickhouse.flow_sink import clickhouse_trading_mapper
from sinks.clickhouse.trading_rows import TABLE_COLUMNS as CH_COLUMNS
from sinks.clickhouse.trading_writer import TradingClickHouseWriter
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.flow_sink import _postgres_rows
from sinks.postgres.rows import TABLE_COLUMNS as PG_COLUMNS
from sinks.postgres.rows import TABLE_KEYS
from sinks.postgres.writer import PostgresWriter
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import CashKind, CashMovement, ExecutionReport, Trade
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    CashResult,
    ExecutionResult,
    PnlSnapshot,
    ShardOutput,
    ShardState,
    StateChange,
    mark_of,
    on_cash_inplace,
    on_finish_inplace,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.trading_builders import OrderSim, u

BASE = 1 << 40  # a restart version base, as `restart_version_base` gives
MARK_EVERY_US = 200_000
TICK_EVERY = 150  # reports between timer ticks


def _fix44(account: str, symbol: str, px: int, ts: int) -> list[ExecutionReport]:
    """FIX 4.4 orders of one account: a fill while a replace is pending, a replace above the
    order-size limit, a bust and a correction (ExecRefID), a pending cancel, then a cancel."""
    order = OrderSim(f"{account}-o44", qty=u(200), account_id=account, symbol=symbol,
                     limit_price=px, ts=ts)
    reports = [order.new(), order.trade(u(100), px), order.pending_replace(),
               order.trade(u(50), px), order.replace(u(400)), order.trade(u(60), px)]
    reports += [order.trade_cancel(reports[1].exec_id),
                order.trade_correct(reports[3].exec_id, u(40), px)]
    other = OrderSim(f"{account}-c44", qty=u(10), account_id=account, symbol=symbol,
                     limit_price=px, ts=ts + 500_000)
    reports += [other.new(), other.pending_cancel(), other.cancel()]
    return reports


def _movements(accounts: list[str], ts: int, i: int) -> list[CashMovement]:
    """Cash movements at event time `ts`: round `i` deposits into every account, then
    withdraws, then charges a fee; FX-EUR is an EUR account (a USD deposit is refused)."""
    kind = (CashKind.DEPOSIT, CashKind.WITHDRAWAL, CashKind.FEE)[i % 3]
    out = [CashMovement(f"cm-{i}-{a}", a, kind, u(1_000 + 10 * i), "USD", ts, f"round {i}")
           for a in accounts]
    out.append(CashMovement(f"cm-{i}-eur", "FX-EUR", CashKind.DEPOSIT, u(500), "EUR", ts, None))
    out.append(CashMovement(f"cm-{i}-bad", "FX-EUR", CashKind.DEPOSIT, u(7), "USD", ts, None))
    return out


def _outputs() -> list[ShardOutput]:
    """The shard step's outputs over a small synthetic order flow and its marks, with FIX 4.4
    orders and cash movements mixed in."""
    spec = MarketSpec(seed=12, n_symbols=6, n_accounts=5, duration_s=20.0, order_rate=20.0,
                      trade_rate=60.0, quote_rate=20.0, fault_rate=0.0)
    market = generate_market(spec)
    shard = ShardState()
    # Low limits, so alerts are raised and cleared along the way.
    config = TradingConfig(RiskLimitBook(RiskLimits(max_order_qty=300 * ONE,
                                                    max_position_qty=2_000 * ONE)),
                           currencies={"FX-EUR": "EUR"})
    last_mark: dict[str, int] = {}
    last_px: dict[str, int] = {}
    accounts: list[str] = []
    out: list[ShardOutput] = []
    reports = 0
    for _topic, _key, record in market.stream():
        if isinstance(record, ExecutionReport):
            out += on_report_inplace(shard, record, config)
            reports += 1
            if record.account_id not in accounts:
                accounts.append(record.account_id)
            if reports % TICK_EVERY == 0:
                out += on_tick_inplace(shard, shard.clock_us, config)
            if reports % 97 == 0:
                movements = _movements(accounts, record.ts_event, reports // 97)
                for movement in [*movements, movements[0]]:  # the first one re-sent
                    out += on_cash_inplace(shard, movement, config)
            if reports == 200 and record.symbol in last_px:
                for report in _fix44(record.account_id, record.symbol,
                                     last_px[record.symbol], record.ts_event + 1):
                    out += on_report_inplace(shard, report, config)
        elif isinstance(record, Trade):
            last_px[record.symbol] = record.price
            if record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US) >= MARK_EVERY_US:
                last_mark[record.symbol] = record.ts_event
                out += on_market_inplace(shard, mark_of(record), config)
    out += on_finish_inplace(shard)
    return out


@pytest.fixture(scope="module")
def outputs() -> list[ShardOutput]:
    out = _outputs()
    changes = [o for o in out if isinstance(o, StateChange) and o.output.position is not None]
    assert len(changes) > 200, "the input must revalue positions many times"
    assert sum(len(o.output.alerts) for o in out if not isinstance(o, PnlSnapshot)) > 10
    cash = [o for o in out if isinstance(o, CashResult)]
    assert {o.outcome.kind for o in cash} == {"applied", "duplicate", "invalid"}
    assert sum(1 for o in out if isinstance(o, ExecutionResult)
               and o.report.exec_ref_id is not None) == 2, "a bust and a correction"
    units = {a.unit for o in out if not isinstance(o, PnlSnapshot) for a in o.output.alerts}
    assert len(units - {None}) >= 2, "alerts in several units"
    return out


def _chunks(items: list[ShardOutput], size: int | None) -> Iterator[list[ShardOutput]]:
    step = size or len(items)
    for i in range(0, len(items), step):
        yield items[i:i + step]


# Postgres


def _pg_state(dsn: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    state = {}
    with connect_postgres(dsn, schema, autocommit=True) as conn:
        for table, columns in PG_COLUMNS.items():
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, TABLE_KEYS[table])))
            state[table] = [tuple(r) for r in conn.execute(query).fetchall()]
    return state


def _schema(dsn: str, tmp_path: Path, label: str) -> str:
    name = f"tf_w{label}_{uuid.uuid4().hex[:8]}"
    init_postgres(Settings(home=tmp_path / "home", postgres_dsn=dsn, postgres_schema=name), dsn)
    return name


def _pg_writer(dsn: str, schema: str, **kwargs: Any) -> PostgresWriter:
    return PostgresWriter(lambda: connect_postgres(dsn, schema), store=f"test {schema}",
                          max_age_s=3600, max_rows=1_000_000, **kwargs)


@pytest.fixture(scope="module")
def pg_reference(outputs: list[ShardOutput], postgres_dsn: str,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    schema = _schema(postgres_dsn, tmp_path_factory.mktemp("pgref"), "ref")
    writer = _pg_writer(postgres_dsn, schema, method="executemany")
    with writer:
        rows = 0
        for item in outputs:
            if isinstance(item, ExecutionResult | CashResult | StateChange):
                for table, row in _postgres_rows(item, BASE):
                    writer.add(table, row)
                    writer.flush()  # every state, one at a time
                    rows += 1
    assert writer.batches_written == rows
    return _pg_state(postgres_dsn, schema)


@pytest.mark.parametrize(("method", "batch"), [
    ("copy", None), ("copy", 37), ("executemany", 37), ("executemany", 1),
])
def test_postgres_latest_state_writes_equal_every_state_writes(
        outputs: list[ShardOutput], pg_reference: dict[str, list[tuple[Any, ...]]],
        postgres_dsn: str, tmp_path: Path, method: str, batch: int | None) -> None:
    schema = _schema(postgres_dsn, tmp_path, method[:4])
    writer = _pg_writer(postgres_dsn, schema, method=method)
    with writer:
        for chunk in _chunks(outputs, batch):
            for item in chunk:
                if isinstance(item, ExecutionResult):
                    writer.add_output(item.output, item.report, version_base=BASE)
                elif isinstance(item, CashResult):
                    writer.add_output(item.output, cash=(item.movement, item.outcome),
                                      version_base=BASE)
                elif isinstance(item, StateChange):
                    writer.add_output(item.output, version_base=BASE)
            writer.flush()
    got = _pg_state(postgres_dsn, schema)
    assert got == pg_reference
    assert all(got[t] for t in PG_COLUMNS)
    if batch is None:  # one batch: each key written once, far fewer rows than states
        states = sum(len(_postgres_rows(o)) for o in outputs
                     if isinstance(o, ExecutionResult | CashResult | StateChange))
        assert writer.rows_written == sum(len(rows) for rows in got.values()) < states / 2


def test_the_copy_path_survives_a_new_connection(postgres_dsn: str, tmp_path: Path,
                                                 outputs: list[ShardOutput]) -> None:
    # Stage tables are temporary (per session): after a reconnect they are made again.
    schema = _schema(postgres_dsn, tmp_path, "conn")
    writer = _pg_writer(postgres_dsn, schema)
    results = [o for o in outputs if isinstance(o, ExecutionResult)][:20]
    with writer:
        writer.add_output(results[0].output, results[0].report)
        writer.flush()
        writer._drop_connection()
        for result in results[1:]:
            writer.add_output(result.output, result.report)
        writer.flush()
    logged = _pg_state(postgres_dsn, schema)["execution_log"]
    assert len(logged) == len({r.report.exec_id for r in results})


# ClickHouse


def _ch_state(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(tuple(r) for r in client.query(
        f"SELECT {', '.join(columns)} FROM {table} FINAL",
        query_formats={"DateTime64*": "int"}).result_rows)
        for table, columns in CH_COLUMNS.items()}


def _ch_client(url: str, label: str) -> Any:
    database = f"tf_w{label}_{uuid.uuid4().hex[:8]}"
    init_clickhouse(Settings(clickhouse_dsn=url, clickhouse_database=database))
    return open_clickhouse(url, database)


@pytest.mark.parametrize("batch", [None, 37])
def test_clickhouse_arrow_latest_writes_equal_every_record_row_by_row(
        outputs: list[ShardOutput], clickhouse_url: str, batch: int | None) -> None:
    records = [r for o in outputs for r in _clickhouse_records(o)]
    reference = _ch_client(clickhouse_url, "ref")
    mapper = clickhouse_trading_mapper(BASE)
    with ClickHouseWriter(reference, columns=CH_COLUMNS, max_rows=1_000_000,
                          max_age_s=3600) as rows:
        for chunk in _chunks(outputs, batch):
            for record in (r for o in chunk for r in _clickhouse_records(o)):
                rows.add(*mapper(record))
            rows.flush()
    client = _ch_client(clickhouse_url, "arrow")
    with TradingClickHouseWriter(client, version_base=BASE, max_rows=1_000_000,
                                 max_age_s=3600) as arrow:
        for chunk in _chunks(outputs, batch):
            for record in (r for o in chunk for r in _clickhouse_records(o)):
                arrow.add_record(record)
            arrow.flush()
    want = _ch_state(reference)
    assert _ch_state(client) == want
    assert all(want[t] for t in CH_COLUMNS)
    if batch is None:  # the snapshots re-emitted in one batch were written once
        assert arrow.rows_written < len(records)


def test_a_record_that_does_not_fit_is_left_out_and_the_rest_written(
        outputs: list[ShardOutput], clickhouse_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    results = [o for o in outputs if isinstance(o, ExecutionResult)][:5]
    bad_report = results[2].report._replace(order_qty=10**18)  # beyond Decimal(18, 8)
    bad = ExecutionResult(bad_report, results[2].output)
    client = _ch_client(clickhouse_url, "bad")
    with TradingClickHouseWriter(client) as writer:
        for record in [*results[:2], bad, *results[3:]]:
            writer.add_record(record)
    stored = {row[0] for row in _ch_state(client)["executions"]}
    assert stored == {r.report.exec_id for r in results} - {bad_report.exec_id}
    assert writer.unmapped == 1 and "executions.order_qty" in caplog.text
