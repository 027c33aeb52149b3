"""The market dataflow end to end: a labelled synthetic market on the real broker, the flow run
by Bytewax in batch mode (Kafka source to the current end), results read from chDB and Kafka.

What it proves, against the generator's labels and the core's batch functions:
- every clean trade and quote is in ClickHouse exactly once (no row twice, even before FINAL);
- every injected bad tick is in `rejected_ticks` with the labelled reason, and nothing else is;
- the candles equal `tapeflow.core.market.candle_batch.build_candles` over the accepted trades
(final
  version per bucket, every field, `version` included: it is the trade count);
- every garbage frame is on the dead-letter topic with its raw bytes, source topic, partition,
  offset and the labelled decode reason;
- marks are clean trades only, never move back in event time, are throttled, and end on each
  symbol's last clean trade.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from itertools import pairwise
from typing import Any

from bytewax.testing import run_main

from flows.market import build_flow
from jobs.generate import produce_market
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import (
    TOPIC_DLQ,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    LocalCatalogue,
)
from schemas.codec import Codec
from sinks.versions import CANDLE_VERSION_SHIFT
from sources.kafka.topic_reader import read_all
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import to_decimal
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.conditions import DEFAULT_CONDITION_RULES, PRICE_BIT
from tapeflow.core.models import Quote, Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

SPEC = MarketSpec(seed=7, n_symbols=5, duration_s=25.0, fault_rate=0.02)
MARK_INTERVAL_US = 1_000_000


def _rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql, query_formats={"DateTime64*": "int"}).result_rows]


def _trade_key(t: Trade) -> tuple[Any, ...]:
    return (t.symbol, t.venue, t.ts_event, t.seq, to_decimal(t.price), to_decimal(t.size),
            t.trade_id, list(t.conditions))


def _quote_key(q: Quote) -> tuple[Any, ...]:
    return (q.symbol, q.venue, q.ts_event, q.seq, to_decimal(q.bid_px), to_decimal(q.bid_sz),
            to_decimal(q.ask_px), to_decimal(q.ask_sz))


def test_market_flow_end_to_end(settings: Settings) -> None:
    settings = settings.with_overrides(clickhouse_database=f"tf_mkt_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    create_topics(settings)
    market = generate_market(SPEC)
    codec = Codec(LocalCatalogue.load())
    produce_market(settings, market, codec)

    started = time.monotonic()
    run_main(build_flow(settings, tail=False, codec=codec))
    elapsed = time.monotonic() - started
    assert elapsed < 45, f"the flow took {elapsed:.1f} s"

    labels = [lab for lab in market.labels if lab.kind in ("trade", "quote")]
    clean_trades = [market.trades[lab.row] for lab in labels
                    if lab.kind == "trade" and lab.expected_reason is None]
    clean_quotes = [market.quotes[lab.row] for lab in labels
                    if lab.kind == "quote" and lab.expected_reason is None]
    assert clean_trades and clean_quotes

    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)

    # Clean ticks: exactly once, before and after FINAL.
    trade_cols = "symbol, venue, ts_event, seq, price, size, trade_id, conditions"
    got_trades = _rows(client, f"SELECT {trade_cols} FROM trades")
    assert len(got_trades) == len(clean_trades)
    assert sorted(got_trades) == sorted(_trade_key(t) for t in clean_trades)
    assert _rows(client, "SELECT count() FROM trades FINAL") == [(len(clean_trades),)]
    quote_cols = "symbol, venue, ts_event, seq, bid_px, bid_sz, ask_px, ask_sz"
    got_quotes = _rows(client, f"SELECT {quote_cols} FROM quotes")
    assert sorted(got_quotes) == sorted(_quote_key(q) for q in clean_quotes)

    # Rejections: the labelled reason for every bad tick, and no other rejection. Identical
    # re-sends collapse to one row by design (docs/stores.md), hence sets.
    expected_rejects = {
        (lab.kind, lab.expected_reason, lab.symbol, lab.venue, lab.ts_event, lab.seq)
        for lab in labels if lab.expected_reason is not None
    }
    got_rejects = set(_rows(client, "SELECT kind, reason, symbol, venue, ts_event, seq "
                                    "FROM rejected_ticks FINAL"))
    assert got_rejects == expected_rejects
    assert Counter(r[1] for r in got_rejects).keys() >= {"crossed_quote", "non_positive_price"}

    # Candles: the core's batch fold over the accepted trades, last version per bucket.
    expected_candles, too_late = build_candles(clean_trades)
    assert not too_late
    candle_cols = ("symbol, bucket, open, high, low, close, volume, notional, vwap, "
                   "trade_count, version")
    for width, table in ((1_000_000, "candles_1s"), (60_000_000, "candles_1m")):
        want = [
            (c.symbol, c.bucket,
             *(None if p is None else to_decimal(p)  # volume-only prints: no prices
               for p in (c.open, c.high, c.low, c.close)),
             to_decimal(c.volume), to_decimal(c.notional, 16),
             to_decimal(c.vwap), c.trade_count, c.version)
            for c in final_candles(expected_candles) if c.width_us == width
        ]
        got = _rows(client, f"SELECT {candle_cols} FROM {table} FINAL ORDER BY symbol, bucket")
        # Stored version = the writer's base + the core's version (sinks.versions): one flow
        # run, one base; the rest is the core's version, the trade count.
        assert len({r[-1] >> CANDLE_VERSION_SHIFT for r in got}) == 1, table
        got = [(*r[:-1], r[-1] & ((1 << CANDLE_VERSION_SHIFT) - 1)) for r in got]
        assert got == sorted(want), table

    # Dead letters: every garbage frame of the market topics, raw bytes and origin kept.
    conf = settings.kafka_config()
    md_topics = {settings.topic(TOPIC_TRADES), settings.topic(TOPIC_QUOTES)}
    garbage = [g for g in market.garbage if settings.topic(g.topic) in md_topics]
    assert garbage
    messages = read_all(conf, settings.topic(TOPIC_DLQ), expect=len(garbage))
    letters = [codec.decode(m.value(), expect="DeadLetter") for m in messages]
    assert Counter((m.key().decode(), lt.topic, lt.raw, lt.reason)
                   for m, lt in zip(messages, letters, strict=True)) == Counter(
        (g.key, settings.topic(g.topic), g.frame(codec.encode), g.variant) for g in garbage)
    sources = {t: {(m.partition(), m.offset()): m.value() for m in read_all(conf, t)}
               for t in md_topics}
    for lt in letters:
        assert sources[lt.topic][(lt.partition, lt.offset)] == lt.raw
        assert lt.ts > 0

    # Marks: clean trades only, monotonic, throttled, ending on the last clean trade.
    marks = [codec.decode(m.value(), expect="Trade")
             for m in read_all(conf, settings.topic(TOPIC_MARKS))]
    assert marks
    clean_set = set(clean_trades)
    assert all(m in clean_set for m in marks)
    by_symbol: dict[str, list[Trade]] = {}
    for m in marks:  # a symbol's marks are on one partition, in the order they were sent
        by_symbol.setdefault(m.symbol, []).append(m)
    assert set(by_symbol) == {t.symbol for t in clean_trades}
    for symbol, seq in by_symbol.items():
        assert all(a.ts_event <= b.ts_event for a, b in pairwise(seq))
        # The mark is the last clean trade that sets prices: an odd lot (I) never is.
        last_clean = max(t.ts_event for t in clean_trades if t.symbol == symbol
                         and DEFAULT_CONDITION_RULES.effect(t.venue, t.conditions) & PRICE_BIT)
        assert seq[-1].ts_event == last_clean
        # Throttled: one mark per interval of event time; only the last (sent at the end of
        # the input) may follow its predecessor sooner.
        gaps = [b.ts_event - a.ts_event for a, b in pairwise(seq[:-1])]
        assert all(g >= MARK_INTERVAL_US for g in gaps)


def test_a_batch_run_over_a_long_backlog_judges_trades_against_their_quotes(
    settings: Settings,
) -> None:
    """`tapeflow run market --batch` over minutes of backlog: every verdict as labelled.

    Reading a backlog, trades run ahead of their quotes by about 2/3 of its span (docs/flows.md);
    the batch run's merge waits the whole horizon, so no trade is judged against stale quotes.
    """
    from tapeflow.runtime.run import RunOptions, build

    settings = settings.with_overrides(clickhouse_database=f"tf_mkt_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    create_topics(settings)
    market = generate_market(MarketSpec(seed=11, n_symbols=6, duration_s=150.0,
                                        fault_rate=0.01))
    produce_market(settings, market, Codec(LocalCatalogue.load()))

    run_main(build(settings, RunOptions(flow="market", batch=True, recovery=False)))

    expected_rejects = {
        (lab.kind, lab.expected_reason, lab.symbol, lab.venue, lab.ts_event, lab.seq)
        for lab in market.labels
        if lab.kind in ("trade", "quote") and lab.expected_reason is not None
    }
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    got_rejects = set(_rows(client, "SELECT kind, reason, symbol, venue, ts_event, seq "
                                    "FROM rejected_ticks FINAL"))
    assert got_rejects == expected_rejects
