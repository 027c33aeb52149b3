"""The trading dataflow end to end: a synthetic order flow and marks on the real broker, the
flow run by Bytewax in batch mode (Kafka source to the current end), results read from the
embedded Postgres, chDB and Kafka, and compared with the trading core folded in a plain loop.

What it proves:
- orders, positions and accounts in Postgres equal the core's fold of the same reports
  (orders whole; positions and accounts in every column the reports decide, plus the mark and
  unrealised P&L of open positions at the newest mark, which every shard received);
- execution_log and ClickHouse `executions` hold every exec_id exactly once (no row twice,
  even before FINAL), with the verdict of its first delivery; re-sent reports are duplicates;
  a fill for an unknown order is invalid and alerted;
- the alerts are the core's, each once on risk.alerts, and the same ids in Postgres and
  ClickHouse;
- every account with a fill has P&L snapshots, the last one at its final cash;
- undecodable reports are on the dead-letter topic;
- a second run from scratch over the same input into the same stores changes nothing, and
  sends no alert to risk.alerts again.

The risk limits (written to Postgres, read by the flow) keep only the rules that the reports
alone decide (order size, position limit with open orders, invalid reports): the rules that
use marks would depend on how marks interleave with reports, which a run does not fix
(docs/flows.md, "Trading flow"); tests/unit/test_trading_step.py covers those in the shard.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bytewax.testing import run_main

from flows.trading import build_flow
from jobs.init import create_topics, init_clickhouse, init_postgres
from schemas.catalogue import (
    TOPIC_ALERTS,
    TOPIC_DLQ,
    TOPIC_EXECUTIONS,
    LocalCatalogue,
)
from schemas.codec import Codec
from sinks.postgres.rows import (
    ORDER_COLUMNS,
    account_row,
    order_row,
    outcome_fields,
    position_row,
)
from sources.kafka.topic_reader import read_all
from sources.postgres.limits import load_trading_config
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.trading.account_step import TradingState, new_trading_state, on_execution
from tapeflow.core.trading.positions import apply_mark
from tapeflow.core.trading.shard_step import mark_of
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.order_flow import LIMITS_SQL, SHARD, produce_order_flow

POSITION_DECIDED = ("account_id", "symbol", "qty", "avg_px", "realised_pnl", "commissions",
                    "opened_ts")
ACCOUNT_DECIDED = ("account_id", "cash", "realised_pnl", "commissions", "unrealised_pnl",
                   "equity")


def _pg(settings: Settings, sql: str) -> list[dict[str, Any]]:
    assert settings.postgres.dsn is not None
    with connect_postgres(settings.postgres.dsn.get_secret_value(),
                          settings.postgres.schema) as conn:
        cur = conn.execute(sql)
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _ch(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql, query_formats={"DateTime64*": "int"}).result_rows]


def _pick(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in columns) for r in rows)


def _stores(settings: Settings) -> dict[str, Any]:
    """Everything a replay must leave unchanged."""
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    return {
        "orders": _pick(_pg(settings, "SELECT * FROM orders"), ORDER_COLUMNS),
        "positions": _pick(_pg(settings, "SELECT * FROM positions"), POSITION_DECIDED),
        "accounts": _pick(_pg(settings, "SELECT * FROM accounts"), ACCOUNT_DECIDED),
        "execution_log": _pick(_pg(settings, "SELECT * FROM execution_log"),
                               ("exec_id", "outcome", "outcome_detail")),
        "alerts": _pick(_pg(settings, "SELECT * FROM alerts"),
                        ("alert_id", "rule", "severity", "source_event_id")),
        "ch_executions": sorted(_ch(client, "SELECT exec_id, outcome FROM executions FINAL")),
        "ch_alerts": sorted(_ch(client, "SELECT alert_id FROM alerts FINAL")),
        "ch_pnl": sorted(_ch(client, "SELECT account_id, symbol, ts, qty, avg_px, realised_pnl, "
                                     "cash FROM pnl_snapshots FINAL")),
    }


def test_trading_flow_end_to_end(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings.with_overrides(clickhouse_database=f"tf_trd_{tag}",
                                       postgres_schema=f"tf_trd_{tag}")
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    init_clickhouse(settings)
    init_postgres(settings, dsn)
    create_topics(settings)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()
        config = load_trading_config(conn)
    codec = Codec(LocalCatalogue.load())
    reports, marks, garbage = produce_order_flow(settings, codec)

    started = time.monotonic()
    run_main(build_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                        shard_config=SHARD))
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"the flow took {elapsed:.1f} s"

    # The core, folded in a plain loop over the same reports (per account, arrival order).
    states: dict[str, TradingState] = {}
    first_outcome: dict[str, tuple[str, str]] = {}
    alerts = {}
    for report in reports:
        state = states.get(report.account_id) or new_trading_state(
            report.account_id, SHARD.initial_cash)
        states[report.account_id], out = on_execution(state, report, config, {})
        assert out.outcome is not None
        first_outcome.setdefault(report.exec_id, outcome_fields(out.outcome))
        alerts.update({a.alert_id: a for a in out.alerts})
    newest = {}
    for trade in marks:
        mark = mark_of(trade)
        if mark.symbol not in newest or mark.ts_event > newest[mark.symbol].ts_event:
            newest[mark.symbol] = mark
    accounts = {}
    for acct, state in states.items():
        account = state.account
        for mark in newest.values():
            account, _ = apply_mark(account, mark)
        accounts[acct] = account
    resent = Counter(r.exec_id for r in reports)
    assert any(n > 1 for n in resent.values()), "the generator re-sent some reports"
    assert first_outcome["NOPE-1"][0] == "invalid"
    assert alerts and Counter(a.rule for a in alerts.values())["invalid_execution"] == 1

    got = _stores(settings)
    # Orders, positions, accounts: the fold.
    orders = [order_row(o) for s in states.values()
              for o in [*s.orders.live.values(), *s.orders.terminal.values()]]
    assert got["orders"] == _pick(orders, ORDER_COLUMNS)
    positions = [position_row(p) for a in accounts.values() for p in a.positions.values()]
    assert got["positions"] == _pick(positions, POSITION_DECIDED)
    pg_positions = {(r["account_id"], r["symbol"]): r
                    for r in _pg(settings, "SELECT * FROM positions WHERE qty <> 0")}
    for row in positions:
        if row["qty"] != 0:
            held = pg_positions[(row["account_id"], row["symbol"])]
            assert (held["mark"], held["unrealised_pnl"]) == (row["mark"], row["unrealised_pnl"])
    assert got["accounts"] == _pick([account_row(a) for a in accounts.values()],
                                    ACCOUNT_DECIDED)
    assert {r[0] for r in got["accounts"]} == {f"ACC00{i}" for i in (1, 2, 3)}

    # Every report once, with its first verdict, in Postgres and in ClickHouse (even before
    # FINAL: a re-sent report is not written twice).
    want_log = sorted((x, *first_outcome[x]) for x in resent)
    assert got["execution_log"] == want_log
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    raw = _ch(client, "SELECT exec_id, outcome FROM executions")
    assert sorted(raw) == [(x, kind) for x, kind, _ in want_log]

    # Alerts: the core's, once on the topic, same ids in both stores.
    conf = settings.kafka_config()
    on_topic = [codec.decode(m.value(), expect="RiskAlert")
                for m in read_all(conf, settings.topic(TOPIC_ALERTS), expect=len(alerts))]
    assert sorted(a.alert_id for a in on_topic) == sorted(alerts)
    assert set(on_topic) == set(alerts.values())
    assert got["alerts"] == sorted((a.alert_id, a.rule, str(a.severity), a.source_event_id)
                                   for a in alerts.values())
    assert got["ch_alerts"] == sorted((x,) for x in alerts)

    # P&L snapshots: every account with a fill, the last one at its final cash.
    last = _ch(client, "SELECT account_id, argMax(cash, ts) FROM pnl_snapshots FINAL "
                       "WHERE symbol = '' GROUP BY account_id ORDER BY account_id")
    filled = {a for a, acc in accounts.items() if acc.positions}
    assert last == sorted((a, Decimal(accounts[a].cash) / ONE) for a in filled)
    buckets = _ch(client, "SELECT count(DISTINCT ts) FROM pnl_snapshots")
    assert buckets[0][0] >= 4, "45 s of reports cut into 10 s buckets"

    # Undecodable reports: on the dead-letter topic.
    letters = [codec.decode(m.value(), expect="DeadLetter")
               for m in read_all(conf, settings.topic(TOPIC_DLQ), expect=garbage)]
    assert garbage and len(letters) == garbage
    assert {lt.topic for lt in letters} == {settings.topic(TOPIC_EXECUTIONS)}

    # A replay from scratch into the same stores and topic changes nothing: the alert sink
    # reads the ids already on the topic and does not send them again.
    run_main(build_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                        shard_config=SHARD))
    assert _stores(settings) == got
    again = read_all(conf, settings.topic(TOPIC_ALERTS))
    assert sorted(codec.decode(m.value(), expect="RiskAlert").alert_id for m in again) == sorted(
        alerts)
