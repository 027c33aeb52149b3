"""Records with extreme values through the real market flow: Kafka -> flow -> chDB and the
dead-letter topic, the flow run by Bytewax in batch mode.

Table-driven: each case is one tick in a symbol of its own (so no case judges another) and the
outcome it must have: stored in `trades`/`quotes`, refused into `rejected_ticks` with a reason,
or sent to the dead-letter topic with a reason. What it proves, per case:
- the outcome is the documented one, and nothing else happened to the tick (not stored twice,
  not both stored and rejected);
- a stored or rejected tick reads back from ClickHouse exactly, field for field (prices at
  scale 8, timestamps to the microsecond, the longest symbols, unicode and control characters,
  SQL metacharacters); a NUL or an over-long symbol is a dead letter with its reason;
- a stored trade has its 1 s candle, exact, so the extreme values also went through the
  candle arithmetic (notional up to 10**20);
- the flow survives all of it (the last record, a plain trade, is stored too) and logs no
  error: no row was refused by a sink (before the codec refused year-2300 timestamps, such a
  trade was a `future_timestamp` rejection that `rejected_ticks` could not hold, logged and
  dropped).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, NamedTuple

import pytest
from bytewax.testing import run_main

from flows.market import build_flow
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import TOPIC_DLQ, TOPIC_QUOTES, TOPIC_TRADES, LocalCatalogue
from schemas.codec import EVENT_TIME_MAX_US, Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from tapeflow.core.fixedpoint import MAX_UNITS, to_decimal
from tapeflow.core.models import Quote, Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

NOW = 1_790_000_000_000_000  # 2026-09-21, a plain event time
Y1970 = 1  # 1970-01-01T00:00:00.000001Z
Y2300 = 10_413_792_000_000_000  # 2300-01-01T00:00:00Z: beyond ClickHouse's DateTime64
ONE = 100_000_000  # 1.00000000
SQL = "x'); DROP TABLE trades; --\"`\\%s{0};"


class Case(NamedTuple):
    name: str
    tick: Trade | Quote
    outcome: str
    """"stored", "rejected:<reason>" or "dead:<reason>"."""


def _t(symbol: str, *, ts: int = NOW, price: int = ONE, size: int = ONE, seq: int = 1,
       venue: str = "XNAS", trade_id: str | None = "T1",
       conditions: tuple[str, ...] = ()) -> Trade:
    return Trade(symbol, venue, ts, seq, price, size, trade_id, conditions)


CASES = [
    Case("smallest price", _t("TINY", price=1), "stored"),
    Case("largest price and size", _t("HUGE", price=MAX_UNITS, size=MAX_UNITS), "stored"),
    Case("smallest size", _t("DUST", size=1), "stored"),
    Case("size zero", _t("ZERO", size=0), "rejected:non_positive_size"),
    Case("negative price", _t("NEG", price=-ONE), "rejected:non_positive_price"),
    Case("negative largest price", _t("NEGMAX", price=-MAX_UNITS), "rejected:non_positive_price"),
    Case("timestamp in 1970", _t("OLD", ts=Y1970), "stored"),
    Case("timestamp at the epoch", _t("EPOCH", ts=0), "stored"),
    Case("timestamp in 2299, the last storable microsecond", _t("Y2299", ts=EVENT_TIME_MAX_US),
         "rejected:future_timestamp"),
    Case("timestamp in 2300", _t("Y2300", ts=Y2300), "dead:timestamp_out_of_range"),
    Case("largest seq", _t("SEQMAX", seq=2**63 - 1), "stored"),
    # A symbol and a venue are keys (market tables, md.marks, positions and alerts through
    # marks): bounded like an execution report's ids, 256 UTF-8 bytes (issue 14).
    Case("longest symbol and venue", _t("S" * 256, venue="V" * 256), "stored"),
    Case("10 kB symbol", _t("S" * 10_240), "dead:identifier_too_long"),
    Case("10 kB unicode symbol", _t("\u00e9\u4e2d\U0001f600" * 1_000),
         "dead:identifier_too_long"),
    Case("10 kB trade id", _t("TID", trade_id="t" * 10_240), "stored"),
    Case("unicode everywhere", _t("\u65e5\u672c\u682a", venue="\u00c9X\u00c7",
                                  trade_id="\u2603", conditions=("\u00fc", "\U0001f4a5")),
         "stored"),
    Case("SQL metacharacters", _t(SQL, venue=SQL, trade_id=SQL, conditions=(SQL, "'", "--")),
         "stored"),
    # Postgres refuses NUL in any text, and a symbol reaches Postgres (issue 14): refused.
    Case("NUL character", _t("A\x00B\n\t", trade_id="\x00", conditions=("\x01",)),
         "dead:nul_byte"),
    Case("control characters", _t("C\x01B\n\t\x1b[2J", trade_id="\x1b]0;x\x07",
                                  conditions=("\x01",)), "stored"),
    Case("empty strings", _t("", venue="", trade_id="", conditions=("",)), "stored"),
    Case("quote with extreme prices", Quote("QX", "XNAS", NOW, 1, 1, 1, MAX_UNITS, MAX_UNITS),
         "stored"),
    Case("quote in 2300", Quote("QY", "XNAS", Y2300, 1, ONE, ONE, ONE, ONE),
         "dead:timestamp_out_of_range"),
    Case("quote, SQL metacharacters, crossed", Quote(SQL + "Q", SQL, NOW, 1, 2 * ONE, ONE, ONE,
                                                     ONE), "rejected:crossed_quote"),
    Case("a plain trade after all of it", _t("LAST"), "stored"),
]


def _rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql, query_formats={"DateTime64*": "int"}).result_rows]


def _trade_row(t: Trade) -> tuple[Any, ...]:
    return (t.symbol, t.venue, t.ts_event, t.seq, to_decimal(t.price), to_decimal(t.size),
            t.trade_id, list(t.conditions))


def _quote_row(q: Quote) -> tuple[Any, ...]:
    return (q.symbol, q.venue, q.ts_event, q.seq, to_decimal(q.bid_px), to_decimal(q.bid_sz),
            to_decimal(q.ask_px), to_decimal(q.ask_sz))


def test_extreme_values_are_stored_exactly_or_refused_with_a_reason(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings.with_overrides(clickhouse_database=f"tf_ext_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    create_topics(settings)
    codec = Codec(LocalCatalogue.load())
    writer = KafkaWriter(settings.kafka_config())
    frames = {}
    for case in CASES:
        topic = TOPIC_TRADES if isinstance(case.tick, Trade) else TOPIC_QUOTES
        frames[case.name] = codec.encode(case.tick)
        writer.send(settings.topic(topic), frames[case.name], key=case.tick.symbol)
    writer.flush()

    with caplog.at_level(logging.WARNING):
        run_main(build_flow(settings, tail=False, codec=codec))
    # No row was refused by a sink ("not stored in ClickHouse: ..."), no step failed.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    trades = _rows(client, "SELECT symbol, venue, ts_event, seq, price, size, trade_id, "
                           "conditions FROM trades")
    quotes = _rows(client, "SELECT symbol, venue, ts_event, seq, bid_px, bid_sz, ask_px, ask_sz "
                           "FROM quotes")
    rejected = _rows(client, "SELECT reason, symbol, venue, ts_event, seq, price, size, "
                             "trade_id, conditions, bid_px, bid_sz, ask_px, ask_sz "
                             "FROM rejected_ticks")
    candles = {r[0]: r[1:] for r in _rows(
        client, "SELECT symbol, bucket, open, high, low, close, volume, notional, trade_count "
                "FROM candles_1s FINAL")}
    n_dead = sum(c.outcome.startswith("dead:") for c in CASES)
    dlq = read_all(settings.kafka_config(), settings.topic(TOPIC_DLQ), expect=n_dead)
    letters = {m.key().decode(): codec.decode(m.value(), expect="DeadLetter") for m in dlq}

    for case in CASES:
        tick = case.tick
        is_trade = isinstance(tick, Trade)
        stored_row = _trade_row(tick) if is_trade else _quote_row(tick)  # type: ignore[arg-type]
        stored = (trades if is_trade else quotes).count(stored_row)
        refused = [r for r in rejected if r[1] == tick.symbol]
        letter = letters.get(tick.symbol)
        kind, _, reason = case.outcome.partition(":")
        if kind == "stored":
            assert (stored, refused, letter) == (1, [], None), case.name
            if is_trade:
                assert isinstance(tick, Trade)
                bucket = tick.ts_event - tick.ts_event % 1_000_000
                price = to_decimal(tick.price)
                assert candles[tick.symbol] == (
                    bucket, price, price, price, price, to_decimal(tick.size),
                    to_decimal(tick.price * tick.size, 16), 1), case.name
        elif kind == "rejected":
            assert stored == 0 and letter is None, case.name
            assert len(refused) == 1, case.name
            got = refused[0]
            assert got[0] == reason, case.name
            if is_trade:
                assert got[1:9] == _trade_row(tick), case.name  # type: ignore[arg-type]
            else:
                assert (*got[1:5], *got[9:]) == _quote_row(tick), case.name  # type: ignore[arg-type]
        else:
            assert (stored, refused) == (0, []), case.name
            assert letter is not None and letter.reason == reason, case.name
            assert letter.raw == frames[case.name], case.name
            topic = TOPIC_TRADES if is_trade else TOPIC_QUOTES
            assert letter.topic == settings.topic(topic) and letter.offset >= 0, case.name

    # Nothing else was written: every row belongs to a case.
    assert len(trades) == sum(c.outcome == "stored" and isinstance(c.tick, Trade) for c in CASES)
    assert len(quotes) == sum(c.outcome == "stored" and isinstance(c.tick, Quote) for c in CASES)
    assert len(rejected) == sum(c.outcome.startswith("rejected:") for c in CASES)
    assert len(dlq) == n_dead
