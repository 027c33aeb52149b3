"""`tapeflow query` against real stores filled by the real market and trading flows.

A small generated market (3 symbols, 11 minutes, faults included) goes through Kafka into the
market flow and then the trading flow (Bytewax, batch mode), as in test_market_flow.py and
test_trading_flow.py. What it proves:
- candles of every interval equal the core's direct build from the clean trades, in every field
  (1s and 1m are stored; 5m, 15m, 1h, 1d are rolled up from 1m in SQL and equal a direct build
  of that width, version included), and a coarse candle is returned whole or not at all;
- vwap per symbol over a range equals the exact half-even quotient of the trades' sums; per
  interval it is the candles' vwap;
- rejects, pnl, positions and alerts equal plain reads of their tables, with their filters;
- every subcommand through the CLI in JSON, and candles in every format (table, csv, json,
  parquet), read back with polars, equal the API's DataFrame: decimals exact, never floats;
- a symbol made of quotes and SQL metacharacters, written through the real ClickHouse sink,
  round-trips through the API and the CLI, and no table loses a row; the roll-up of its
  hand-made trades hits both half-even ties and still equals the core;
- bad arguments end in one line, and parquet without --output is refused.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from bytewax.testing import run_main
from typer.testing import CliRunner

from flows.market import build_flow as market_flow
from flows.trading import build_flow as trading_flow
from jobs.generate import produce_market
from jobs.init import create_topics, grant_access, init_clickhouse, init_postgres
from jobs.query import Analytics
from jobs.query_params import QueryInputError
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.versions import CANDLE_VERSION_SHIFT
from sources.synthetic import MarketSpec, generate_market
from tapeflow.cli import app
from tapeflow.core.fixedpoint import ONE, div_round, to_decimal, to_units
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import MINUTE_US, CandleConfig
from tapeflow.core.models import Trade
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.errors import StoreUnavailableError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

SPEC = MarketSpec(seed=5, n_symbols=3, n_accounts=3, duration_s=660.0, trade_rate=5.0,
                  quote_rate=8.0, order_rate=1.0, fault_rate=0.02)
WIDTHS = {"1s": 1_000_000, "1m": MINUTE_US, "5m": 5 * MINUTE_US, "15m": 15 * MINUTE_US,
          "1h": 60 * MINUTE_US, "1d": 24 * 60 * MINUTE_US}
NASTY = "X'; DROP TABLE trades; --\"\\ {symbol:String} %s"
LIMITS_SQL = "UPDATE risk_limits SET max_order_qty = 500 WHERE account_id = '*'"
CANDLE_COLS = ("symbol", "bucket", "open", "high", "low", "close", "volume", "notional", "vwap",
               "trade_count", "version")


@dataclass
class Filled:
    settings: Settings
    env: dict[str, str]
    clean: list[Trade]
    distinct_rejects: int


def _time(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _iso(us: int) -> str:
    return _time(us).isoformat()


@pytest.fixture(scope="module")
def filled(kafka_bootstrap: str, kafka_auth: dict[str, Any], postgres_dsn: str,
           clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        home=tmp_path_factory.mktemp("home"), kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn, clickhouse_dsn=clickhouse_url,
        clickhouse_database=f"tf_q_{tag}", postgres_schema=f"tf_q_{tag}",
        kafka_topic_prefix=f"q{tag}.", kafka_partitions=2, **kafka_auth,
    )
    init_clickhouse(settings)
    init_postgres(settings, postgres_dsn)
    create_topics(settings)
    grant_access(settings)
    with connect_postgres(postgres_dsn, settings.postgres.schema) as conn:
        conn.execute(LIMITS_SQL)
        conn.commit()
    market = generate_market(SPEC)
    codec = Codec(LocalCatalogue.load())
    produce_market(settings, market, codec)
    run_main(market_flow(settings, tail=False, codec=codec))
    run_main(trading_flow(settings, tail=False, codec=codec, tick=timedelta(seconds=1),
                          shard_config=ShardConfig(snapshot_interval_us=30_000_000)))
    # The reference is what the flow accepted (the flow's own tests hold it to the labels).
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    clean = [Trade(s, v, ts, seq, to_units(p), to_units(z), tid, tuple(cond))
             for s, v, ts, seq, p, z, tid, cond in client.query(
                 "SELECT symbol, venue, toUnixTimestamp64Micro(ts_event), seq, price, size, "
                 "trade_id, conditions FROM trades FINAL ORDER BY ts_event, seq").result_rows]
    rejected = client.query("SELECT count() FROM rejected_ticks FINAL").result_rows[0][0]
    assert len(clean) > 3000
    env = {"TAPEFLOW_CLICKHOUSE_DSN": clickhouse_url, "TAPEFLOW_POSTGRES_DSN": postgres_dsn,
           "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
           "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
           "TAPEFLOW_HOME": str(settings.home)}
    yield Filled(settings, env, clean, rejected)


def _want_candles(trades: list[Trade], width: int, symbol: str, start_us: int,
                  end_us: int) -> list[tuple[Any, ...]]:
    """The core's direct build of `width` from the trades: buckets starting in [start, end)."""
    built, too_late = build_candles(trades, CandleConfig(widths_us=(width,)))
    assert not too_late
    def dec(units: int | None) -> Any:  # None: a bucket of volume-only prints has no prices
        return None if units is None else to_decimal(units)
    return [(c.symbol, _time(c.bucket), dec(c.open), dec(c.high),
             dec(c.low), dec(c.close), to_decimal(c.volume),
             to_decimal(c.notional, 16), to_decimal(c.vwap), c.trade_count, c.version)
            for c in final_candles(built)
            if c.symbol == symbol and start_us <= c.bucket < end_us]


def _got(frame: pl.DataFrame, columns: tuple[str, ...] = CANDLE_COLS) -> list[tuple[Any, ...]]:
    """The rows; a candle's version as its content part. A stored version is the writer's base
    + the trade count (sinks.versions) and a roll-up sums its parts', so the low 20 bits are
    the (summed) trade count, which a direct build's version is, and the rest the bases."""
    rows = [tuple(r) for r in frame.select(columns).iter_rows()]
    if "version" not in columns:
        return rows
    at = columns.index("version")
    mask = (1 << CANDLE_VERSION_SHIFT) - 1
    return [(*r[:at], r[at] & mask, *r[at + 1:]) for r in rows]


def _cli(filled: Filled, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=filled.env, catch_exceptions=False)
    return result


def _read_back(path: Path, fmt: str, schema: pl.Schema) -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(path)
    if fmt == "csv":
        return pl.read_csv(path, schema=schema)
    return pl.read_json(path, schema=schema)


def test_candles_every_interval_equal_the_core(filled: Filled) -> None:
    symbol = filled.clean[0].symbol
    # Not aligned to anything: coarse candles starting before it must not come back partial.
    start_us = SPEC.start_us + 7 * MINUTE_US + 13_000_000
    end_us = SPEC.start_us + 11 * MINUTE_US
    with Analytics(filled.settings) as q:
        for interval, width in WIDTHS.items():
            frame = q.candles(symbol, interval, _iso(start_us), _iso(end_us))
            want = _want_candles(filled.clean, width, symbol, start_us, end_us)
            assert _got(frame) == want, interval
            if width <= 5 * MINUTE_US:
                assert want, f"the range should hold {interval} candles"
        # The whole day: every coarse candle, decimals as pl.Decimal, never floats.
        whole = q.candles(symbol, "5m")
        assert _got(whole) == _want_candles(filled.clean, 5 * MINUTE_US, symbol, 0, 2**62)
        assert len(whole) >= 3
        assert whole.schema["open"] == pl.Decimal(18, 8)
        assert whole.schema["notional"] == pl.Decimal(38, 16)
        assert whole.schema["bucket"] == pl.Datetime("us", "UTC")
        hourly = q.candles(symbol, "1h")
        assert _got(hourly) == _want_candles(filled.clean, 60 * MINUTE_US, symbol, 0, 2**62)


def test_vwap_per_symbol_and_per_interval(filled: Filled) -> None:
    start_us = SPEC.start_us + 90_000_123
    end_us = SPEC.start_us + 400_000_007
    with Analytics(filled.settings) as q:
        got = q.vwap(_iso(start_us), _iso(end_us))
        per_bucket = q.vwap(_iso(start_us), _iso(end_us), interval="1m")
        candles = {s: q.candles(s, "1m", _iso(start_us), _iso(end_us))
                   for s in sorted({t.symbol for t in filled.clean})}
    sums: dict[str, list[int]] = {}
    for t in filled.clean:
        if start_us <= t.ts_event < end_us:
            acc = sums.setdefault(t.symbol, [0, 0, 0])
            acc[0] += t.price * t.size
            acc[1] += t.size
            acc[2] += 1
    want = [(s, to_decimal(v), to_decimal(n, 16), to_decimal(div_round(n, v)), c)
            for s, (n, v, c) in sorted(sums.items())]
    assert _got(got, ("symbol", "volume", "notional", "vwap", "trade_count")) == want
    assert len(want) == SPEC.n_symbols
    assert per_bucket.schema["vwap"] == pl.Decimal(18, 8)
    want_buckets = pl.concat(list(candles.values())).select(
        "symbol", "bucket", "volume", "notional", "vwap", "trade_count")
    assert _got(per_bucket, tuple(per_bucket.columns)) == _got(want_buckets,
                                                               tuple(want_buckets.columns))


def test_rejects_pnl_positions_alerts_equal_their_tables(filled: Filled) -> None:
    settings = filled.settings
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    rows = client.query("SELECT kind, reason, symbol FROM rejected_ticks FINAL").result_rows
    with Analytics(settings) as q:
        rejects = q.rejects()
        counts = Counter(tuple(r) for r in rows)
        assert {(k, r, s): n for k, r, s, n in rejects.iter_rows()} == counts
        assert rejects["rejected"].sum() == filled.distinct_rejects > 0
        one = rejects["symbol"][0]
        assert set(q.rejects(symbols=[one])["symbol"]) == {one}

        accounts = [r[0] for r in client.query(
            "SELECT DISTINCT account_id FROM pnl_snapshots FINAL ORDER BY 1").result_rows]
        assert accounts
        account = accounts[0]
        pnl = q.pnl(account)
        want = client.query("SELECT ts, cash, equity FROM pnl_snapshots FINAL WHERE account_id "
                            "= {a:String} AND symbol = '' ORDER BY ts", parameters={"a": account})
        assert [(t.replace(tzinfo=UTC), c, e) for t, c, e in want.result_rows] == \
            _got(pnl, ("ts", "cash", "equity"))
        assert len(pnl) >= 2 and set(pnl["symbol"]) == {""}
        assert pnl.schema["cash"] == pl.Decimal(38, 8)
        later = q.pnl(account, start=pnl["ts"][1])
        assert len(later) == len(pnl) - 1

        assert settings.postgres.dsn is not None
        with connect_postgres(settings.postgres.dsn.get_secret_value(),
                              settings.postgres.schema) as conn:
            pg_positions = conn.execute(
                "SELECT account_id, symbol, qty, avg_px, realised_pnl FROM positions "
                "ORDER BY account_id, symbol").fetchall()
            pg_alerts = conn.execute("SELECT alert_id, severity, rule FROM alerts "
                                     "ORDER BY ts_event, alert_id").fetchall()
        positions = q.positions()
        assert _got(positions, ("account_id", "symbol", "qty", "avg_px", "realised_pnl")) == \
            [tuple(r) for r in pg_positions]
        assert pg_positions and positions.schema["qty"] == pl.Decimal(18, 8)
        mine = q.positions(account=account, open_only=True)
        assert set(mine["account_id"]) <= {account}
        assert all(v != 0 for v in mine["qty"])

        ch_alerts = q.alerts()
        assert pg_alerts, "the limits should have raised alerts"
        assert sorted(ch_alerts["alert_id"]) == sorted(r[0] for r in pg_alerts)
        pg_frame = q.alerts(source="postgres")
        assert sorted(pg_frame["alert_id"]) == sorted(ch_alerts["alert_id"])
        ack = ("acknowledged_at", "acknowledged_by", "ack_note")
        assert pg_frame.drop(ack).schema == ch_alerts.schema  # one shape from either store
        assert rejects.schema["reason"] == pl.String
        for floor, allowed in (("warning", {"WARNING", "CRITICAL"}), ("CRITICAL", {"CRITICAL"})):
            want_ids = sorted(a for a, s, _ in pg_alerts if s in allowed)
            assert sorted(q.alerts(severity=floor)["alert_id"]) == want_ids
            assert sorted(q.alerts(severity=floor, source="postgres")["alert_id"]) == want_ids
        rule = pg_alerts[0][2]
        assert set(q.alerts(rules=[rule])["rule"]) == {rule}
        since = ch_alerts["ts_event"][len(ch_alerts) // 2]
        assert all(t >= since for t in q.alerts(start=since)["ts_event"])
        assert len(q.alerts(start=since)) < len(ch_alerts) or len(ch_alerts) == 1


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "parquet"])
def test_candles_cli_every_format_round_trips(filled: Filled, fmt: str, tmp_path: Path) -> None:
    symbol = filled.clean[-1].symbol
    with Analytics(filled.settings) as q:
        api = q.candles(symbol, "5m")
    assert len(api) >= 2
    out = tmp_path / f"candles.{fmt}"
    result = _cli(filled, "query", "candles", symbol, "--interval", "5m", "--format", fmt,
                  "--output", str(out))
    assert result.exit_code == 0, result.output
    if fmt == "table":
        text = out.read_text()
        for row in api.iter_rows(named=True):
            assert f"{row['open']:f}" in text and f"{row['notional']:f}" in text
            assert row["bucket"].isoformat() in text
        return
    back = _read_back(out, fmt, api.schema)
    assert back.schema == api.schema
    assert back.equals(api)


@pytest.mark.parametrize("args", [
    ("vwap",), ("vwap", "--interval", "15m"), ("rejects",), ("positions",), ("alerts",),
    ("alerts", "--source", "postgres", "--severity", "WARNING"), ("pnl",),
])
def test_every_subcommand_cli_json_equals_api(filled: Filled, args: tuple[str, ...]) -> None:
    with Analytics(filled.settings) as q:
        account = q.positions()["account_id"][0]
        full = (*args, "--account", account) if args == ("pnl",) else args
        api = {
            "vwap": lambda: q.vwap(interval="15m" if "--interval" in args else None),
            "rejects": q.rejects,
            "positions": q.positions,
            "alerts": lambda: q.alerts(severity="WARNING", source="postgres")
            if "--source" in args else q.alerts(),
            "pnl": lambda: q.pnl(account),
        }[args[0]]()
    result = _cli(filled, "query", *full, "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(api) > 0, args
    back = pl.read_json(result.stdout.encode(), schema=api.schema)
    assert back.equals(api), args


def test_metacharacter_symbol_round_trips_and_drops_nothing(filled: Filled,
                                                            tmp_path: Path) -> None:
    settings = filled.settings
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    tables = ("trades", "candles_1m", "candles_1s", "rejected_ticks", "pnl_snapshots")
    before = {t: client.query(f"SELECT count() FROM {t} FINAL").result_rows[0][0]
              for t in tables}
    base = SPEC.start_us + 3_600 * 1_000_000  # 15:30, aligned to 5m
    # Prices chosen so the 5m vwaps are half-even ties: 1.000000015 -> ...02, 1.000000005 -> ...00.
    specs = [(0, ONE + 1), (61, ONE + 2), (300, ONE), (420, ONE + 1), (421, ONE + 1),
             (425, ONE)]
    trades = [Trade(NASTY, "XNAS", base + s * 1_000_000, i + 1, px, ONE, None, ())
              for i, (s, px) in enumerate(specs)]
    built, _ = build_candles(trades)
    writer = ClickHouseWriter(client)
    writer.add_records([*trades, *final_candles(built)])
    writer.flush()

    with Analytics(settings) as q:
        five = q.candles(NASTY, "5m")
        assert _got(five) == _want_candles(trades, 5 * MINUTE_US, NASTY, 0, 2**62)
        assert [f"{v:f}" for v in five["vwap"]] == ["1.00000002", "1.00000000"]
        assert _got(q.candles(NASTY, "1m")) == _want_candles(trades, MINUTE_US, NASTY, 0, 2**62)
        vwap = q.vwap(symbols=[NASTY])
        assert vwap["symbol"].to_list() == [NASTY] and vwap["trade_count"][0] == len(trades)
        assert len(q.positions(account=NASTY)) == 0
        assert len(q.alerts(account=NASTY, rules=[NASTY])) == 0
        assert len(q.pnl(NASTY, symbol=NASTY)) == 0

    out = tmp_path / "nasty.csv"
    result = _cli(filled, "query", "candles", NASTY, "--interval", "1m", "-f", "csv", "-o",
                  str(out))
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out)["symbol"].to_list() == [NASTY] * 4
    after = {t: client.query(f"SELECT count() FROM {t} FINAL").result_rows[0][0]
             for t in tables}
    assert after == {**before, "trades": before["trades"] + len(trades),
                     "candles_1m": before["candles_1m"] + 4,
                     "candles_1s": before["candles_1s"] + len(trades)}


@pytest.mark.parametrize(("args", "message"), [
    (("candles", "A", "--start", "yesterday"), "--start: 'yesterday' is not an ISO-8601 time"),
    (("candles", "A", "--interval", "2m"), "unknown interval '2m'"),
    (("candles", "A", "--start", "2026-01-02", "--end", "2026-01-01"), "--end must be after"),
    (("candles", "A", "--format", "parquet"), "--format parquet writes a binary file"),
    (("candles", "A", "--format", "xml"), "unknown format 'xml'"),
    (("alerts", "--severity", "loud"), "unknown severity 'loud'"),
])
def test_bad_arguments_end_in_one_line(filled: Filled, args: tuple[str, ...],
                                       message: str) -> None:
    result = _cli(filled, "query", *args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"tapeflow: error: {message}")


def test_times_without_offset_are_utc(filled: Filled) -> None:
    symbol = filled.clean[0].symbol
    with Analytics(filled.settings) as q:
        naive = q.candles(symbol, "1m", "2026-01-05T14:32:00", "2026-01-05T14:35:00")
        aware = q.candles(symbol, "1m", "2026-01-05T15:32:00+01:00", "2026-01-05T14:35:00Z")
    assert len(naive) == 3 and naive.equals(aware)
    assert naive["bucket"][0] == datetime(2026, 1, 5, 14, 32, tzinfo=UTC)
    with pytest.raises(QueryInputError):
        Analytics(filled.settings).candles(symbol, "1m", "14:32 today")


def test_stores_without_tables_say_run_init(filled: Filled) -> None:
    tag = uuid.uuid4().hex[:8]
    bare = filled.settings.with_overrides(clickhouse_database=f"tf_bare_{tag}",
                                          postgres_schema=f"tf_bare_{tag}")
    open_clickhouse(bare.clickhouse_url()).command(f"CREATE DATABASE tf_bare_{tag}")
    with Analytics(bare) as q:
        with pytest.raises(StoreUnavailableError,
                           match=f"ClickHouse database 'tf_bare_{tag}' has no Tapeflow tables; "
                                 "run `tapeflow init` first"):
            q.candles("A", "5m")
        with pytest.raises(StoreUnavailableError, match=r"Postgres schema .* run `tapeflow init`"):
            q.positions()
