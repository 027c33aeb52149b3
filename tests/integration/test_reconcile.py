"""`tapeflow reconcile` against the real stores, after a real run of the trading flow.

The synthetic order flow of tests/integration/test_trading_flow.py (duplicates, garbage and an
invalid fill included) goes through the broker and the trading dataflow into Postgres and
ClickHouse. Then:

- reconciling its date finds no break, compares every position and account, skips nothing;
  reconciling the day before skips everything (all fills are after it) and finds nothing;
- after one Postgres position's quantity is edited by hand, reconcile finds exactly that break
  (account, symbol, field, expected = the flow's value, actual = the edited one), records it
  in `reconciliation_runs`/`_breaks`, raises one `reconciliation_break` alert that can be read
  back from risk.alerts and is in both alerts tables, and the CLI prints it and exits 1;
- a second run over the same stores is the same run: same records, no second alert on the
  topic;
- once the row is put back, the CLI exits 0.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bytewax.testing import run_main
from typer.testing import CliRunner

from flows.trading import build_flow
from jobs.init import create_topics, init_clickhouse, init_postgres
from jobs.reconcile import run_reconcile
from schemas.catalogue import TOPIC_ALERTS, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.topic_reader import read_all
from tapeflow.cli import app
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.trading.reconcile import RULE, Break
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.order_flow import LIMITS_SQL, SHARD, SPEC, produce_order_flow


def _day(ts_us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us)


def test_reconcile_finds_exactly_a_planted_break(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings.with_overrides(clickhouse_database=f"tf_rec_{tag}",
                                       postgres_schema=f"tf_rec_{tag}")
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    init_clickhouse(settings)
    applied = init_postgres(settings, dsn)
    assert "0002_reconcile.sql" in applied
    create_topics(settings)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()
    codec = Codec(LocalCatalogue.load())
    reports, _marks, _garbage = produce_order_flow(settings, codec)
    run_main(build_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                        shard_config=SHARD))
    day = _day(SPEC.start_us).date()
    assert _day(max(r.ts_event for r in reports)).date() == day

    clean = run_reconcile(settings, day, codec=codec)
    assert clean.breaks == []
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        n_positions = conn.execute("SELECT count(*) FROM positions").fetchone()
        n_accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()
        assert n_positions and n_accounts
        assert clean.compared == n_positions[0] + n_accounts[0] > 3
        # Plant one break: an open position's quantity edited by hand.
        row = conn.execute("SELECT account_id, symbol, qty FROM positions WHERE qty <> 0 "
                           "ORDER BY account_id, symbol LIMIT 1").fetchone()
        assert row is not None
        account, symbol, qty = row
        conn.execute("UPDATE positions SET qty = qty + 1 WHERE account_id = %s AND symbol = %s",
                     (account, symbol))
        conn.commit()
    assert clean.skipped == 0
    assert clean.reports == len({r.exec_id for r in reports})
    before = run_reconcile(settings, day - timedelta(days=1), codec=codec)
    assert before.breaks == [] and before.reports == 0 and before.skipped == clean.compared

    # The account's desk gets the break alert too (a desk's subscribers read only its topic).
    with_desk = settings.with_overrides(access_desks=f"desk-r={account}")
    create_topics(with_desk)
    found = run_reconcile(with_desk, day, codec=codec)
    want = Break(account, symbol, "qty", int(qty * ONE), int((qty + 1) * ONE))
    assert found.breaks == [want]
    assert found.alerts_sent == 1
    (alert,) = found.alerts
    assert (alert.rule, alert.account_id, alert.symbol) == (RULE, account, symbol)
    assert (alert.limit, alert.observed) == (want.expected, want.actual)

    with connect_postgres(dsn, settings.postgres.schema) as conn:
        recorded = conn.execute(
            "SELECT account_id, symbol, field, expected, actual, alert_id "
            "FROM reconciliation_breaks WHERE run_date = %s AND run_id = %s",
            (day, found.run_id)).fetchall()
        runs = conn.execute("SELECT breaks, compared FROM reconciliation_runs "
                            "WHERE run_date = %s AND run_id = %s", (day, found.run_id)).fetchall()
        pg_alerts = conn.execute("SELECT alert_id FROM alerts WHERE rule = %s",
                                 (RULE,)).fetchall()
    assert recorded == [(account, symbol, "qty", Decimal(qty), Decimal(qty + 1), alert.alert_id)]
    assert runs == [(1, clean.compared)]
    assert pg_alerts == [(alert.alert_id,)]
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    ch_alerts = client.query("SELECT alert_id FROM alerts FINAL WHERE rule = {r:String}",
                             parameters={"r": RULE}).result_rows
    assert [tuple(r) for r in ch_alerts] == [(alert.alert_id,)]

    def topic_breaks() -> list[str]:
        on_topic = [codec.decode(m.value(), expect="RiskAlert")
                    for m in read_all(settings.kafka_config(), settings.topic(TOPIC_ALERTS))]
        return [a.alert_id for a in on_topic if a.rule == RULE]

    assert topic_breaks() == [alert.alert_id]
    on_desk = read_all(settings.kafka_config(), with_desk.desk_topic("desk-r"))
    assert [codec.decode(m.value(), expect="RiskAlert") for m in on_desk] == [alert]

    # The CLI: prints the break, exits 1; the same run again sends nothing new.
    env = {**kafka_env(settings),
           "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
           "TAPEFLOW_POSTGRES_DSN": dsn,
           "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
           "TAPEFLOW_CLICKHOUSE_DSN": settings.clickhouse_url(),
           "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database}
    runner = CliRunner()
    result = runner.invoke(app, ["reconcile", "--date", day.isoformat()], env=env)
    assert result.exit_code == 1, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [account, symbol, "qty", f"{qty:f}", f"{qty + 1:f}"] in lines
    assert f"run {found.run_id}" in result.stdout and "0 alerts sent" in result.stdout
    assert topic_breaks() == [alert.alert_id]
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        count = conn.execute("SELECT count(*) FROM reconciliation_breaks").fetchone()
        assert count == (1,)
        conn.execute("UPDATE positions SET qty = %s WHERE account_id = %s AND symbol = %s",
                     (qty, account, symbol))
        conn.commit()
    result = runner.invoke(app, ["reconcile", "--date", day.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert "0 breaks" in result.stdout
