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
- ClickHouse `pnl_snapshots`: the rows of the buckets the reports cut (a bucket in which an
  account had an applied execution, bust or correction): the set of (account, symbol,
  bucket) keys, and their qty, avg_px, realised_pnl, cash. Rows of buckets only marks cut
  depend on how marks interleave with reports (tapeflow.core.trading.shard_step);
- alerts decided by the reports alone (order_size, position_limit, invalid_execution): every
  column, in Postgres `alerts`, ClickHouse `alerts` and as distinct records on risk.alerts;
  the versions of positions, accounts and pnl_snapshots differ by design (a restarted
  process's rows outrank a killed one's: `sinks.versions.restart_version_base`);
- tapeflow.dlq: the same distinct letters (at least once on the topic; all fields but the
  run's topic prefix and `ts`, the input's broker timestamp).

Compared by final value (they depend on how md.marks interleaves with oms.executions, which
neither a replay nor a second run repeats: docs/flows.md, "Determinism"):
- positions (open ones): mark, mark_ts, unrealised_pnl; accounts: unrealised_pnl, equity
  (the newest mark by event time wins once every mark is read);
- pnl_snapshots: mark, unrealised_pnl and equity of each (account, symbol)'s last row (the
  highest version: a killed process may have written a mark bucket the replay never opens,
  and the restarted process's rows outrank its rows);
- daily_loss incidents open at the end, from the flow's final state (each shard's last
  recovery snapshot): its verdict is a function of the final P&L. Report-rule incidents open
  at the end are compared too (with severity).

Mark-reading alerts whose end state is not a final value are checked, not compared: drawdown
(reads peak equity, the path of marks) and price_collar (an order is judged against the mark
current when it arrived). For both runs, every mark-rule incident open in the final state was
announced on risk.alerts; the reference's topic ends (last alert per key) exactly in its final
state (an incident is a rule's key: per (account, symbol), or per order for the per-order rules,
whose alerts name the report of their order). The crash run's topic and alert tables are a
union of paths: a killed process may have
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

import pickle
import random
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.catalogue import TOPIC_ALERTS, TOPIC_DLQ, LocalCatalogue
from schemas.codec import Codec
from sources.synthetic import MarketSpec
from tapeflow.core.trading.shard_step import ShardState
from tapeflow.settings import Settings
from tests.support.flow_process import kill_after, kill_at_insert
from tests.support.trading_runs import TradingRun, trading_input

REPORT_RULES = frozenset({"order_size", "position_limit", "invalid_execution"})
MARK_RULES = frozenset({"daily_loss", "drawdown", "price_collar"})
FINAL_VALUE_RULES = frozenset({"daily_loss"})
"""Mark-reading rules whose verdict at the end is a function of the final state (realised +
unrealised P&L at the newest marks). Drawdown reads the peak equity (the path of marks) and
the price collar judges an order against the mark current when the order arrived."""
POSITION_EXACT = ("account_id", "symbol", "qty", "avg_px", "realised_pnl", "commissions",
                  "opened_ts")
POSITION_FINAL = ("account_id", "symbol", "mark", "mark_ts", "unrealised_pnl")
ACCOUNT_EXACT = ("account_id", "cash", "realised_pnl", "commissions")
ACCOUNT_FINAL = ("account_id", "unrealised_pnl", "equity")
PNL_EXACT = ("account_id", "symbol", "ts", "qty", "avg_px", "realised_pnl", "cash")
PNL_FINAL = ("mark", "unrealised_pnl", "equity")


def _same(what: str, want: list[Any], got: list[Any]) -> None:
    got_set, want_set = set(got), set(want)
    missing = [r for r in want if r not in got_set]
    extra = [r for r in got if r not in want_set]
    assert got == want, (f"{what}: {len(missing)} lost, {len(extra)} differ or extra; "
                         f"e.g. lost {missing[:2]}, extra {extra[:2]}")


Incident = tuple[str, str | None, str | None, str]
"""(rule, account, symbol, scope): the edge trigger's key. Per-order rules (order size, price
collar) have one incident per order (scope = order_id), so two orders of a symbol are two."""
PER_ORDER = frozenset({"order_size", "order_notional", "price_collar", "unvalued_order"})


def _incident(alert: Any, order_of: dict[str, str]) -> Incident:
    """An alert's incident: per-order alerts name the report they were raised on (its
    exec_id), whose order is the scope."""
    scope = order_of.get(alert.source_event_id, "") if alert.rule in PER_ORDER else ""
    return (alert.rule, alert.account_id, alert.symbol, scope)


def _open_on_topic(alerts: list[Any], order_of: dict[str, str]) -> set[Incident]:
    """Mark-reading incidents whose last alert on the topic (topic order: one account's alerts
    share a partition, in emission order) is a breach, not a "cleared" one."""
    latest: dict[Incident, Any] = {}
    for alert in alerts:
        if alert.rule in MARK_RULES:
            latest[_incident(alert, order_of)] = alert
    return {k for k, a in latest.items() if not a.message.startswith("cleared")}


def _final_levels(run: TradingRun) -> dict[Incident, str]:
    """The breached risk keys of every account in the flow's final state (each shard's last
    recovery snapshot, written when the batch run ended), with their severity."""
    db = run.home / "recovery" / "trading" / "part-0.sqlite3"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT state_key, ser_change FROM snaps WHERE step_id LIKE "
                            "'%.trading.stateful_batch' ORDER BY snap_epoch").fetchall()
    # A shard snapshot is the pickled shard (flows.trading_logic.ShardLogic.snapshot).
    shards: dict[str, ShardState] = {k: pickle.loads(pickle.loads(v)) for k, v in rows
                                     if v is not None}
    assert shards, "no shard snapshot"
    return {(key.rule, key.account_id, key.symbol, key.scope): str(level.severity)
            for shard in shards.values() for state in shard.accounts.values()
            for key, level in state.risk.levels.items()}


MOVES = frozenset({"PARTIAL_FILL", "FILL", "TRADE", "TRADE_CANCEL", "TRADE_CORRECT"})


def _report_buckets(cols: list[str], executions: list[tuple[Any, ...]], interval_s: float
                    ) -> set[tuple[str, Any]]:
    """(account, bucket end) of the P&L buckets the reports cut: each applied execution,
    bust or correction's bucket, never before its account's previous one
    (tapeflow.core.trading.shard_step), as the `ts` ClickHouse returns."""
    acct, kind, ts, outcome = (cols.index(c) for c in ("account_id", "exec_type", "ts_event",
                                                        "outcome"))
    width = round(interval_s * 1_000_000)
    last: dict[str, int] = {}
    out: set[tuple[str, Any]] = set()
    moving = [r for r in executions if r[outcome] == "applied" and r[kind] in MOVES]
    for r in sorted(moving, key=lambda r: (r[acct], _micros(r[ts]))):
        bucket = max(_micros(r[ts]) // width, last.get(r[acct], -1))
        last[r[acct]] = bucket
        out.add((r[acct], _as_ts(r[ts], (bucket + 1) * width)))
    return out


def _micros(ts: Any) -> int:
    if isinstance(ts, int):
        return ts
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _as_ts(like: Any, micros: int) -> Any:
    """`micros` in the type ClickHouse returned `like` in (int, or an aware datetime)."""
    if isinstance(like, int):
        return micros
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


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
    version = pnl_cols.index("version")
    cut = _report_buckets(cols, want_rows, ref.settings.trading.pnl_interval_s)

    def pnl(rows: list[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
        exact_rows = sorted(tuple(r[i] for i in exact) for r in rows if (r[0], r[2]) in cut)
        last: dict[tuple[Any, Any], tuple[Any, ...]] = {}
        for r in rows:
            key = (r[0], r[1])
            if key not in last or (r[version], r[2]) > (last[key][version], last[key][2]):
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
    exec_col, order_col = cols.index("exec_id"), cols.index("order_id")
    order_of = {r[exec_col]: r[order_col] for r in want_rows}
    assert {k: v for k, v in got_levels.items() if k[0] in REPORT_RULES} == {
        k: v for k, v in want_levels.items() if k[0] in REPORT_RULES}
    want_final = {k for k in want_levels if k[0] in FINAL_VALUE_RULES}
    assert want_final
    assert {k for k in got_levels if k[0] in FINAL_VALUE_RULES} == want_final
    for run, levels, topic in ((ref, want_levels, want_topic), (crash, got_levels, got_topic)):
        marked = {k for k in levels if k[0] in MARK_RULES}
        announced = {_incident(a, order_of) for a in topic
                     if a.rule in MARK_RULES and not a.message.startswith("cleared")}
        assert marked <= announced, f"{run.settings.kafka.topic_prefix}: open but never announced"
    assert _open_on_topic(want_topic, order_of) == {k for k in want_levels if k[0] in MARK_RULES}
    stale = _open_on_topic(got_topic, order_of) - {k for k in got_levels if k[0] in MARK_RULES}
    print(f"mark-rule incidents open at the end: reference {len(want_final)} decided by final "
          f"values; crash topic: {len(stale)} left open by a killed process's path "
          f"{sorted(stale, key=str)[:3]}")

    def letters(run: TradingRun) -> set[tuple[Any, ...]]:
        # Same letters but for the run's topic prefix and `ts` (the input's broker timestamp:
        # each run's copy of the input was produced separately).
        out = set()
        for _, value in run.topic(TOPIC_DLQ):
            letter = codec.decode(value or b"", expect="DeadLetter")
            topic = letter.topic.removeprefix(run.settings.kafka.topic_prefix)
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
            if kill_at_insert(proc, crash, nth, timeout_s=ref_s + 30):
                kills.append(f"while writing ClickHouse part #{nth}")
        else:
            delay = rng.uniform(point[1], point[2]) * ref_s
            if kill_after(proc, delay):
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
