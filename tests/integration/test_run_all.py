"""`tapeflow run all`: both flows in one dataflow equal the two flows run one after the other.

The same generated market (with faults) plus a short tape with a sequence gap is produced to
two sets of topics. One set goes through `run all` (one dataflow, marks handed over inside
it); the other through `run market`, then `run trading` (marks through md.marks), into
their own ClickHouse database and Postgres schema. Both in batch mode, as the demo runs.

Compared exactly (decided by the input alone): ClickHouse trades, quotes, rejected_ticks,
candles_1s/1m and executions; Postgres orders and execution_log, and every position column
the reports decide; the feed-gap alerts in risk.alerts, Postgres and ClickHouse.
Compared by final value (they depend on how marks interleave with reports): each account's
last P&L snapshot (cash, realised and unrealised P&L, equity) and each position's last
snapshot. Also proved: `run all` marks positions in a batch run whose md.marks was empty when
it started, so the marks were handed over inside the dataflow, not read back from Kafka.
"""

from __future__ import annotations

import uuid
from typing import Any

from bytewax.testing import run_main

from jobs.generate import produce_market
from jobs.init import run_init
from schemas.catalogue import TOPIC_ALERTS, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import Trade
from tapeflow.runtime.run import RunOptions, build
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

SPEC = MarketSpec(seed=5, n_symbols=4, n_accounts=3, duration_s=30.0, order_rate=5.0,
                  fault_rate=0.02)
GAP_SYMBOL = "GAP.TEST"
GAP_SEQS = (1, 2, 3, 10, 11, 140)  # 6 missing (WARNING), then 128 (CRITICAL from 100)

MARKET_TABLES = ("trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m")
POSITION_DECIDED = "account_id, symbol, qty, avg_px, realised_pnl, commissions, opened_ts"


def _gap_tape(start_us: int) -> list[Trade]:
    return [Trade(GAP_SYMBOL, "XTST", start_us + i * 100_000, seq, 100 * ONE, ONE, None, ())
            for i, seq in enumerate(GAP_SEQS)]


def _produce(settings: Settings, codec: Codec) -> None:
    market = generate_market(SPEC)
    produce_market(settings, market, codec)
    start = min(t.ts_event for t in market.trades)
    writer = KafkaWriter(settings.kafka_config())
    for trade in _gap_tape(start):
        writer.send(settings.topic(TOPIC_TRADES), codec.encode(trade), trade.symbol)
    writer.flush()


def _clickhouse(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    return sorted(tuple(r) for r in client.query(sql).result_rows)


def _postgres(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.postgres.dsn is not None
    with connect_postgres(settings.postgres.dsn.get_secret_value(),
                          settings.postgres.schema) as conn:
        return sorted(tuple(r) for r in conn.execute(sql).fetchall())


def _outputs(settings: Settings, codec: Codec) -> dict[str, list[tuple[Any, ...]]]:
    # A candle's stored version is its writer's base + its trade count (sinks.versions): each
    # run is its own writer, so the runs compare by the count part (the low 20 bits).
    out = {table: _clickhouse(settings, f"SELECT * EXCEPT (ingested_at, version), "
                                        f"bitAnd(version, 1048575) FROM {table} FINAL"
                              if table.startswith("candles") else
                              f"SELECT * EXCEPT ingested_at FROM {table} FINAL")
           for table in MARKET_TABLES}
    out["executions"] = _clickhouse(
        settings, "SELECT * EXCEPT ingested_at FROM executions FINAL")
    out["last_pnl"] = _clickhouse(
        settings,
        "SELECT account_id, symbol, argMax((qty, avg_px, mark, realised_pnl, unrealised_pnl, "
        "cash, equity), ts) FROM pnl_snapshots FINAL GROUP BY account_id, symbol")
    out["gap_alerts_ch"] = _clickhouse(
        settings, "SELECT alert_id, severity, symbol FROM alerts FINAL WHERE rule = 'feed_gap'")
    out["orders"] = _postgres(
        settings, "SELECT order_id, client_order_id, account_id, symbol, side, order_type, "
        "order_qty, limit_price, stop_price, cum_qty, leaves_qty, avg_px, status, "
        "last_exec_id, ts_created, ts_last FROM orders")
    out["execution_log"] = _postgres(settings, "SELECT exec_id, outcome FROM execution_log")
    out["positions"] = _postgres(settings, f"SELECT {POSITION_DECIDED} FROM positions")
    out["gap_alerts_pg"] = _postgres(
        settings, "SELECT alert_id, severity, symbol FROM alerts WHERE rule = 'feed_gap'")
    alerts = [codec.decode(r.value(), expect="RiskAlert")
              for r in read_all(settings.kafka_config(), settings.topic(TOPIC_ALERTS))]
    out["gap_alerts_topic"] = sorted((a.alert_id, str(a.severity), a.symbol)
                                     for a in alerts if a.rule == "feed_gap")
    return out


def _settings(base: Settings, name: str) -> Settings:
    tag = uuid.uuid4().hex[:6]
    return base.with_overrides(kafka_topic_prefix=f"{name}{tag}.",
                               clickhouse_database=f"{base.clickhouse.database}_{name}",
                               postgres_schema=f"{base.postgres.schema}_{name}")


def test_run_all_equals_market_then_trading(settings: Settings) -> None:
    codec = Codec(LocalCatalogue.load())
    together, apart = _settings(settings, "all"), _settings(settings, "sep")
    for each in (together, apart):
        assert each.postgres.dsn is not None
        run_init(each, each.postgres.dsn.get_secret_value())
        _produce(each, codec)

    assert read_all(together.kafka_config(), together.topic("md.marks")) == []
    run_main(build(together, RunOptions(flow="all", batch=True, recovery=False)))
    run_main(build(apart, RunOptions(flow="market", batch=True, recovery=False)))
    run_main(build(apart, RunOptions(flow="trading", batch=True, recovery=False)))

    got, want = _outputs(together, codec), _outputs(apart, codec)
    for name, rows in want.items():
        assert got[name] == rows, name
    # The outputs are not trivially empty, and the gaps alerted once each, in all three places.
    assert all(want[t] for t in (*MARKET_TABLES, "executions", "orders", "positions"))
    planted = sorted(sev for _id, sev, sym in want["gap_alerts_topic"] if sym == GAP_SYMBOL)
    assert planted == ["CRITICAL", "WARNING"]
    assert want["gap_alerts_topic"] == want["gap_alerts_pg"] == want["gap_alerts_ch"]
    # Marks came from inside the dataflow: md.marks was empty when the batch run started.
    marked = _postgres(together, "SELECT count(*) FROM positions WHERE mark IS NOT NULL")
    assert marked[0][0] > 0
