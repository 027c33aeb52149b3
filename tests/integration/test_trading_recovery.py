"""Crash test of the trading flow: SIGKILL `tapeflow run trading --batch` at several points,
restart it with the same recovery directory until it finishes, and compare every output with
an uninterrupted run of the same input.

Input: one synthetic order flow (24 accounts, 20 symbols, re-sent reports and garbage) plus
throttled marks (one per symbol per second of event time, from the clean trades) and one fill
for an unknown order, produced identically under two topic prefixes: one for the reference
run, one for the crash run. Each run has its own topics (risk.alerts is deduplicated against
what the topic already holds, so the two runs cannot share it), its own Postgres schema and
its own embedded ClickHouse directory. Limits: a low fat-finger limit (order size) and a
position limit, which the reports alone decide, and daily loss, drawdown and price collar,
which read marks.

Compared exactly (latest version of each row; bookkeeping columns `version`, `updated_at`,
`logged_at`, `created_at`, `ingested_at` left out):
- Postgres `orders` (every column), `execution_log` (every column: the first verdict),
  ClickHouse `executions` (every column; the reference writes no exec_id twice even before
  FINAL, the crash run rewrites what it replays and FINAL keeps one row);
- Postgres `positions`: qty, avg_px, realised_pnl, commissions, opened_ts;
  Postgres `accounts`: cash, realised_pnl, commissions;
- ClickHouse `pnl_snapshots`: the set of (account, symbol, bucket) keys, and qty, avg_px,
  realised_pnl, cash of every row;
- alerts decided by the reports alone (order_size, position_limit, invalid_execution): every
  column, in Postgres `alerts`, ClickHouse `alerts` and as distinct records on risk.alerts;
  the versions of positions, accounts and pnl_snapshots differ by design (a restarted
  process's rows outrank a killed one's: `sinks.bytewax_trading_sinks.restart_version_base`);
- tapeflow.dlq: the same distinct letters (at least once on the topic; all fields but the
  run's topic prefix and `ts`, the input's broker timestamp).

Compared by final value (they depend on how md.marks interleaves with oms.executions, which
neither a replay nor a second run repeats: docs/flows.md, "Determinism"):
- positions (open ones): mark, mark_ts, unrealised_pnl; accounts: unrealised_pnl, equity
  (the newest mark by event time wins once every mark is read);
- pnl_snapshots: mark, unrealised_pnl and equity of each (account, symbol)'s last bucket;
- daily_loss incidents open at the end, from the flow's final state (each shard's last
  recovery snapshot): its verdict is a function of the final P&L. Report-rule incidents open
  at the end are compared too (with severity).

Mark-reading alerts whose end state is not a final value are checked, not compared: drawdown
(reads peak equity, the path of marks) and price_collar (an order is judged against the mark
current when it arrived). For both runs, every mark-rule incident open in the final state was
announced on risk.alerts; the reference's topic ends (last alert per key) exactly in its final
state. The crash run's topic and alert tables are a union of paths: a killed process may have
announced a mark-rule breach on a path the replay did not take, and nothing clears it (the
test prints how many; docs/trading-flow-bench.md, "Recovery"). Report-rule alerts have no
such paths.

Left out, with the reason: `peak_equity` and `ts_last` of positions/accounts (they record the
path of marks, not a final value); stale-data and turnover alerts are off (they run on a wall
clock timer, so even two uninterrupted runs differ).

Kill points (seeded): while ClickHouse writes the n-th part of a start (a `tmp_insert_*`
directory exists: mid-batch), and after random delays counted from the dataflow's start.
"""

from __future__ import annotations

import os
import pickle
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from jobs.init import create_topics, init_postgres
from schemas.catalogue import TOPIC_ALERTS, TOPIC_DLQ, TOPIC_EXECUTIONS, TOPIC_MARKS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka_producer import KafkaWriter
from sinks.stores import connect_postgres
from sources.kafka_reader import read_all
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.config import Settings
from tapeflow.fixedpoint import ONE
from tapeflow.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side
from tapeflow.trading_step import TradingShard
from tests.integration.test_market_recovery import _CHDB_SCRIPT, _kill_after, _kill_at_insert

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_S = 0.5
MARK_EVERY_US = 1_000_000
CH_TABLES = ("executions", "pnl_snapshots", "alerts")
REPORT_RULES = frozenset({"order_size", "position_limit", "invalid_execution"})
MARK_RULES = frozenset({"daily_loss", "drawdown", "price_collar"})
FINAL_VALUE_RULES = frozenset({"daily_loss"})
"""Mark-reading rules whose verdict at the end is a function of the final state (realised +
unrealised P&L at the newest marks). Drawdown reads the peak equity (the path of marks) and
the price collar judges an order against the mark current when the order arrived."""
LIMITS_SQL = """
UPDATE risk_limits SET max_order_qty = 1000, max_position_qty = 2000,
    max_order_notional = NULL, price_collar_bps = 30, max_leverage = NULL,
    max_daily_loss = 300, max_drawdown_bps = 5, max_concentration_bps = NULL,
    max_gross_exposure = NULL, max_turnover_notional = NULL, max_mark_age_us = NULL
WHERE account_id = '*'
"""
POSITION_EXACT = ("account_id", "symbol", "qty", "avg_px", "realised_pnl", "commissions",
                  "opened_ts")
POSITION_FINAL = ("account_id", "symbol", "mark", "mark_ts", "unrealised_pnl")
ACCOUNT_EXACT = ("account_id", "cash", "realised_pnl", "commissions")
ACCOUNT_FINAL = ("account_id", "unrealised_pnl", "equity")
PNL_EXACT = ("account_id", "symbol", "ts", "qty", "avg_px", "realised_pnl", "cash")
PNL_FINAL = ("mark", "unrealised_pnl", "equity")

Records = list[tuple[bytes | None, bytes | None]]


def _unknown_fill(template: ExecutionReport) -> ExecutionReport:
    """A fill for an order the OMS never acknowledged: invalid, alerted, not applied."""
    return template._replace(
        exec_id="NOPE-1", order_id="NOPE", client_order_id=None, side=Side.BUY,
        order_type=OrderType.MARKET, exec_type=ExecType.FILL, ord_status=OrdStatus.FILLED,
        order_qty=10 * ONE, limit_price=None, stop_price=None, last_qty=10 * ONE,
        last_px=template.limit_price or 100 * ONE, cum_qty=10 * ONE, leaves_qty=0,
        avg_px=template.limit_price or 100 * ONE, commission=0, reject_reason=None)


def trading_input(spec: MarketSpec, codec: Codec) -> list[tuple[str, str | None, bytes]]:
    """(topic, key, value) of the executions (garbage and re-sends included) and the marks
    (the first clean trade per symbol per `MARK_EVERY_US`), in arrival order."""
    market = generate_market(spec)
    labels = market.labels
    out: list[tuple[str, str | None, bytes]] = []
    last_mark: dict[str, int] = {}
    first: ExecutionReport | None = None
    for pos, (topic, key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, Garbage):
                out.append((topic, key, record.frame(codec.encode)))
                continue
            first = first or record
            out.append((topic, key, codec.encode(record)))
        elif (topic == "md.trades" and labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            out.append((TOPIC_MARKS, record.symbol, codec.encode(record)))
    assert first is not None
    bad = _unknown_fill(first)
    out.append((TOPIC_EXECUTIONS, bad.account_id, codec.encode(bad)))
    return out


class TradingRun:
    """One `tapeflow run trading --batch` deployment: its own topics, Postgres schema,
    ClickHouse and recovery dirs."""

    def __init__(self, settings: Settings, root: Path, name: str,
                 records: list[tuple[str, str | None, bytes]]) -> None:
        assert settings.postgres_dsn is not None
        self.dsn = settings.postgres_dsn.get_secret_value()
        tag = uuid.uuid4().hex[:6]
        self.settings = settings.with_overrides(
            topic_prefix=f"{settings.topic_prefix}{name}.",
            postgres_schema=f"{settings.postgres_schema}_{name}_{tag}",
            clickhouse_dsn=f"chdb://{root / 'chdb'}")
        self.chdb_dir = root / "chdb"
        self.home = root / "home"
        self.log = root / "flow.log"
        self.root = root
        create_topics(self.settings)
        init_postgres(self.settings, self.dsn)
        with connect_postgres(self.dsn, self.settings.postgres_schema) as conn:
            conn.execute(LIMITS_SQL)
            conn.commit()
        # chDB in a subprocess (one process per directory), started now and waited for later:
        # both runs' set-ups overlap.
        self._chdb_job = self._chdb("init", "", "")
        writer = KafkaWriter(self.settings.kafka_config())
        for topic, key, value in records:
            writer.send(self.settings.topic(topic), value, key=key)
        writer.flush()
        s = self.settings
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
        self.env.update({
            "TAPEFLOW_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "TAPEFLOW_CLICKHOUSE_DSN": s.clickhouse_url(),
            "TAPEFLOW_CLICKHOUSE_DATABASE": s.clickhouse_database,
            "TAPEFLOW_POSTGRES_DSN": self.dsn,
            "TAPEFLOW_POSTGRES_SCHEMA": s.postgres_schema,
            "TAPEFLOW_TOPIC_PREFIX": s.topic_prefix,
            "TAPEFLOW_HOME": str(self.home),
        })

    def start(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tapeflow.cli", "run", "trading", "--batch",
               "--snapshot-interval", str(SNAPSHOT_S)]
        with self.log.open("ab") as log:
            return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)

    def executions(self) -> int:
        """Executions Bytewax has registered in the recovery store."""
        db = self.home / "recovery" / "trading" / "part-0.sqlite3"
        if not db.exists():
            return 0
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
                return int(conn.execute("SELECT count(*) FROM exs").fetchone()[0])
        except sqlite3.Error:
            return 0

    def wait_running(self, proc: subprocess.Popen[bytes], before: int,
                     timeout_s: float = 60.0) -> float:
        deadline = time.monotonic() + timeout_s
        while self.executions() <= before:
            assert proc.poll() is None, f"flow exited at start-up: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the flow did not start"
            time.sleep(0.01)
        return time.monotonic()

    def run_to_end(self, timeout_s: float = 120.0) -> float:
        before = self.executions()
        proc = self.start()
        try:
            started = self.wait_running(proc, before)
            code = proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, f"flow exited with {code}: {self.log.read_text()[-3000:]}"
        return time.monotonic() - started

    def inserts(self) -> set[str]:
        found: set[str] = set()
        for dirpath, dirnames, _files in os.walk(self.chdb_dir / "store"):
            found.update(f"{dirpath}/{d}" for d in dirnames if d.startswith("tmp_insert"))
        return found

    # -- reading the outputs ------------------------------------------------------------
    def pg(self, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        with connect_postgres(self.dsn, self.settings.postgres_schema) as conn:
            cur = conn.execute(f"SELECT * FROM {table}")  # test-only: fixed table names
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return sorted(tuple(r[c] for c in columns) for r in rows)

    def pg_all(self, table: str, leave_out: tuple[str, ...]) -> list[tuple[Any, ...]]:
        with connect_postgres(self.dsn, self.settings.postgres_schema) as conn:
            cur = conn.execute(f"SELECT * FROM {table}")
            names = [d.name for d in cur.description or ()]
        return self.pg(table, tuple(n for n in names if n not in leave_out))

    def _chdb(self, action: str, out: str, tables: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", _CHDB_SCRIPT, action,
                                 self.settings.clickhouse_url(), self.settings.clickhouse_database,
                                 out, tables], cwd=REPO)

    def wait_chdb(self) -> None:
        assert self._chdb_job.wait(timeout=120) == 0, "chDB subprocess failed"

    def start_reading(self) -> None:
        """Read the ClickHouse tables (FINAL, without `ingested_at`) in a subprocess."""
        self._chdb_job = self._chdb("read", str(self.root / "tables.pickle"), ",".join(CH_TABLES))

    def clickhouse(self) -> dict[str, tuple[list[str], list[tuple[Any, ...]], int]]:
        self.wait_chdb()
        with (self.root / "tables.pickle").open("rb") as f:
            tables: dict[str, tuple[list[str], list[tuple[Any, ...]], int]] = pickle.load(f)
        return tables

    def topic(self, name: str) -> Records:
        msgs = read_all(self.settings.kafka_config(), self.settings.topic(name))
        return [(m.key(), m.value()) for m in msgs]


def _same(what: str, want: list[Any], got: list[Any]) -> None:
    got_set, want_set = set(got), set(want)
    missing = [r for r in want if r not in got_set]
    extra = [r for r in got if r not in want_set]
    assert got == want, (f"{what}: {len(missing)} lost, {len(extra)} differ or extra; "
                         f"e.g. lost {missing[:2]}, extra {extra[:2]}")


Incident = tuple[str, str | None, str | None]


def _open_on_topic(alerts: list[Any]) -> set[Incident]:
    """Mark-reading incidents whose last alert on the topic (topic order: one account's alerts
    share a partition, in emission order) is a breach, not a "cleared" one."""
    latest: dict[Incident, Any] = {}
    for alert in alerts:
        if alert.rule in MARK_RULES:
            latest[(alert.rule, alert.account_id, alert.symbol)] = alert
    return {k for k, a in latest.items() if not a.message.startswith("cleared")}


def _final_levels(run: TradingRun) -> dict[Incident, str]:
    """The breached risk keys of every account in the flow's final state (each shard's last
    recovery snapshot, written when the batch run ended), with their severity."""
    db = run.home / "recovery" / "trading" / "part-0.sqlite3"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT state_key, ser_change FROM snaps WHERE step_id LIKE "
                            "'%.trading.stateful_batch' ORDER BY snap_epoch").fetchall()
    shards: dict[str, TradingShard] = {k: pickle.loads(v) for k, v in rows if v is not None}
    assert shards, "no shard snapshot"
    return {(key.rule, key.account_id, key.symbol): str(level.severity)
            for shard in shards.values() for state in shard.accounts.values()
            for key, level in state.risk.levels.items()}


def _compare(ref: TradingRun, crash: TradingRun, codec: Codec) -> None:
    ref.start_reading()
    crash.start_reading()
    # Postgres: exact where the reports decide, final values where marks do.
    for table, leave_out in (("orders", ("version", "updated_at")),
                             ("execution_log", ("logged_at",))):
        want = ref.pg_all(table, leave_out)
        assert want, table
        _same(f"postgres {table}", want, crash.pg_all(table, leave_out))
    for table, columns in (("positions", POSITION_EXACT), ("accounts", ACCOUNT_EXACT),
                           ("accounts", ACCOUNT_FINAL)):
        _same(f"postgres {table} {columns}", ref.pg(table, columns), crash.pg(table, columns))
    # The mark of a closed position is whatever price last touched it while it was open (a
    # fill or a mark, depending on the interleaving): only open positions have a final mark.
    held = ("qty", *POSITION_FINAL)
    want_held = [r for r in ref.pg("positions", held) if r[0] != 0]
    assert want_held
    _same("postgres open positions (final marks)", want_held,
          [r for r in crash.pg("positions", held) if r[0] != 0])

    alert_cols = ("alert_id", "rule", "severity", "account_id", "symbol", "ts_event",
                  "observed", "limit_value", "message", "source_event_id")
    want_alerts = [a for a in ref.pg("alerts", alert_cols) if a[1] in REPORT_RULES]
    got_alerts = [a for a in crash.pg("alerts", alert_cols) if a[1] in REPORT_RULES]
    assert {a[1] for a in want_alerts} == REPORT_RULES
    _same("postgres alerts (report rules)", want_alerts, got_alerts)

    # ClickHouse.
    want_ch, got_ch = ref.clickhouse(), crash.clickhouse()
    cols, want_rows, _ = want_ch["executions"]
    assert got_ch["executions"][0] == cols
    _same("clickhouse executions", want_rows, got_ch["executions"][1])
    assert want_ch["executions"][2] == len(want_rows), "an exec_id written twice"
    ch_alerts_ref = {r[0]: r for r in want_ch["alerts"][1]}
    ch_alerts_crash = {r[0]: r for r in got_ch["alerts"][1]}
    assert sorted(ch_alerts_ref[a[0]] for a in want_alerts) == sorted(
        ch_alerts_crash[a[0]] for a in got_alerts if a[0] in ch_alerts_crash)
    assert {a[0] for a in got_alerts} <= set(ch_alerts_crash)

    pnl_cols = want_ch["pnl_snapshots"][0]
    exact = [pnl_cols.index(c) for c in PNL_EXACT]
    final = [pnl_cols.index(c) for c in PNL_FINAL]

    def pnl(rows: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
        exact_rows = sorted(tuple(r[i] for i in exact) for r in rows)
        last: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        for r in rows:
            key = (r[0], r[1])
            if key not in last or r[2] > last[key][2]:
                last[key] = r
        return exact_rows, sorted((k, tuple(r[i] for i in final)) for k, r in last.items())

    want_exact, want_final = pnl(want_ch["pnl_snapshots"][1])
    got_exact, got_final = pnl(got_ch["pnl_snapshots"][1])
    assert want_exact
    _same("pnl_snapshots (report-decided columns)", want_exact, got_exact)
    _same("pnl_snapshots (final marks)", want_final, got_final)

    # Kafka: risk.alerts (report rules exactly as distinct records; mark rules by the final
    # open incidents) and the DLQ.
    def alerts(run: TradingRun) -> list[Any]:
        return [codec.decode(v or b"", expect="RiskAlert") for _, v in run.topic(TOPIC_ALERTS)]

    want_topic, got_topic = alerts(ref), alerts(crash)
    assert len({a.alert_id for a in want_topic}) == len(want_topic), "repeats without a crash"
    assert {a for a in got_topic if a.rule in REPORT_RULES} == {
        a for a in want_topic if a.rule in REPORT_RULES}
    assert {a.alert_id for a in want_topic if a.rule in REPORT_RULES} == {
        a[0] for a in want_alerts}
    # Mark-reading incidents: the final state of both runs holds the same open ones; the
    # reference's topic announces exactly those. The crash run's topic is a superset of paths
    # (see the module doc): every incident open at the end was announced, and the alerts of a
    # killed process's path that the replay did not take are counted, not compared.
    want_levels, got_levels = _final_levels(ref), _final_levels(crash)
    assert {k: v for k, v in got_levels.items() if k[0] in REPORT_RULES} == {
        k: v for k, v in want_levels.items() if k[0] in REPORT_RULES}
    want_final = {k for k in want_levels if k[0] in FINAL_VALUE_RULES}
    assert want_final
    assert {k for k in got_levels if k[0] in FINAL_VALUE_RULES} == want_final
    for run, levels, topic in ((ref, want_levels, want_topic), (crash, got_levels, got_topic)):
        marked = {k for k in levels if k[0] in MARK_RULES}
        announced = {(a.rule, a.account_id, a.symbol) for a in topic
                     if a.rule in MARK_RULES and not a.message.startswith("cleared")}
        assert marked <= announced, f"{run.settings.topic_prefix}: open but never announced"
    assert _open_on_topic(want_topic) == {k for k in want_levels if k[0] in MARK_RULES}
    stale = _open_on_topic(got_topic) - {k for k in got_levels if k[0] in MARK_RULES}
    print(f"mark-rule incidents open at the end: reference {len(want_final)} decided by final "
          f"values; crash topic: {len(stale)} left open by a killed process's path "
          f"{sorted(stale, key=str)[:3]}")

    def letters(run: TradingRun) -> set[tuple[Any, ...]]:
        # Same letters but for the run's topic prefix and `ts` (the input's broker timestamp:
        # each run's copy of the input was produced separately).
        out = set()
        for _, value in run.topic(TOPIC_DLQ):
            letter = codec.decode(value or b"", expect="DeadLetter")
            topic = letter.topic.removeprefix(run.settings.topic_prefix)
            out.add((topic, *letter[1:6]))
        return out

    want_dlq = letters(ref)
    assert want_dlq and letters(crash) == want_dlq


KillPoint = tuple[str, float, float]


def _crash_test(settings: Settings, tmp_path: Path, spec: MarketSpec, seed: int,
                plan: list[KillPoint]) -> None:
    t0 = time.monotonic()
    codec = Codec(LocalCatalogue.load())
    records = trading_input(spec, codec)
    ref = TradingRun(settings, tmp_path / "ref", "ref", records)
    crash = TradingRun(settings, tmp_path / "crash", "crash", records)
    ref.wait_chdb()
    crash.wait_chdb()
    setup_s = time.monotonic() - t0
    ref_s = ref.run_to_end()

    rng = random.Random(seed)
    kills: list[str] = []
    for point in plan:
        executions = crash.executions()
        proc = crash.start()
        crash.wait_running(proc, executions)
        if point[0] == "insert":
            nth = rng.randint(int(point[1]), int(point[2]))
            if _kill_at_insert(proc, crash, nth, timeout_s=ref_s + 30):  # type: ignore[arg-type]
                kills.append(f"while writing ClickHouse part #{nth}")
        else:
            delay = rng.uniform(point[1], point[2]) * ref_s
            if _kill_after(proc, delay):
                kills.append(f"after {delay:.2f} s")
    crash_s = crash.run_to_end()
    print(f"set-up {setup_s:.1f} s; ", end="")
    print(f"reference {ref_s:.1f} s; kills: {kills}; last restart {crash_s:.1f} s")
    assert len(kills) == len(plan), f"some kills missed (the flow ended first): {kills}"
    _compare(ref, crash, codec)


SPEC = MarketSpec(seed=3, n_symbols=20, n_accounts=24, duration_s=20.0, order_rate=100.0,
                  trade_rate=200.0, quote_rate=400.0, fault_rate=0.01)


def test_trading_flow_survives_kills(settings: Settings, tmp_path: Path) -> None:
    """Three kills: while writing an early part, early, while writing a later part."""
    _crash_test(settings, tmp_path, SPEC, seed=5,
                plan=[("insert", 1, 2), ("delay", 0.05, 0.2), ("insert", 1, 2)])


@pytest.mark.slow
def test_trading_flow_survives_many_kills(settings: Settings, tmp_path: Path) -> None:
    """Eight kills (three while a part is written) on a longer order flow."""
    spec = MarketSpec(seed=9, n_symbols=20, n_accounts=32, duration_s=120.0, order_rate=150.0,
                      trade_rate=200.0, quote_rate=400.0, fault_rate=0.01)
    _crash_test(settings, tmp_path, spec, seed=17,
                plan=[("insert", 1, 2), ("delay", 0.05, 0.1), ("insert", 2, 4),
                      ("delay", 0.1, 0.15), ("insert", 1, 3), ("delay", 0.1, 0.2),
                      ("delay", 0.15, 0.25), ("delay", 0.05, 0.1)])
