"""Late data through the market dataflow: corrections, `too_late`, and a deterministic replay.

A hand-made tape for two symbols, produced to the real broker in arrival order with explicit
Kafka timestamps (the receive time: a late trade is received when it arrives, not when it
happened), then the flow run by Bytewax in batch mode twice, from scratch each time (no
recovery state, Kafka source from the beginning) into two fresh ClickHouse databases.

What it proves (docs/design.md "Semantics", docs/market-core.md "Candles"):
- a trade 30 s late (beyond the 5 s allowed lateness, within the 1 h horizon) is accepted and
  corrects its already final 1 s and 1 min candles; a candle's version is its trade count, so
  the highest version written for every bucket is the complete candle's (a trade 3 s late only
  joins a still-open bucket);
- a trade 2 h late (beyond the horizon) is in `rejected_ticks` as `too_late`, not in `trades`,
  and in no candle;
- `candles_1s` / `candles_1m` FINAL equal the core's batch build over the accepted trades in
  sorted order (every field, `version` included), so the arrival order left no trace;
- the replay classifies every trade (on time, corrected, too late) as the first run did and
  leaves identical tables, versions included: lateness and horizon are event time against a
  per-symbol watermark, and the Kafka timestamps replay as they were.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bytewax.testing import run_main
from confluent_kafka import Producer

from flows.market import build_flow
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import TOPIC_QUOTES, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sinks.versions import CANDLE_VERSION_SHIFT
from tapeflow.core.fixedpoint import to_decimal, to_units
from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.models import Quote, Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

S = 1_000_000
MINUTE = 60 * S
VENUE = "XNAS"

ON_TIME, CORRECTED, TOO_LATE = "on_time", "corrected", "too_late"


def _base_us() -> int:
    """A minute boundary about 3 h ago: event times (and receive times) stay in the past."""
    now = time.time_ns() // 1000
    return (now - 3 * 3600 * S) // MINUTE * MINUTE


class Tape:
    """Records in arrival order, each with its receive time and (trades) expected verdict."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.records: list[tuple[Trade | Quote, int, str | None]] = []
        self._seq: dict[tuple[str, str], int] = {}

    def _next_seq(self, kind: str, symbol: str) -> int:
        seq = self._seq.get((kind, symbol), 0) + 1
        self._seq[(kind, symbol)] = seq
        return seq

    def quote(self, symbol: str, t_s: float, mid: str) -> None:
        ts = self.base + round(t_s * S)
        m = to_units(mid)
        half = to_units("0.10")
        q = Quote(symbol, VENUE, ts, self._next_seq("quote", symbol), m - half,
                  to_units("500"), m + half, to_units("400"))
        self.records.append((q, ts + 50_000, None))

    def trade(self, symbol: str, t_s: float, price: str, size: str, *, seq: int | None = None,
              late_s: float = 0.1, verdict: str = ON_TIME) -> Trade:
        """A trade at event time base + t_s, received `late_s` after it happened."""
        ts = self.base + round(t_s * S)
        seq = self._next_seq("trade", symbol) if seq is None else seq
        tr = Trade(symbol, VENUE, ts, seq, to_units(price), to_units(size),
                   f"{symbol}-{seq}", ())
        self.records.append((tr, ts + round(late_s * S), verdict))
        return tr

    @property
    def verdicts(self) -> dict[Trade, str]:
        return {r: v for r, _, v in self.records if isinstance(r, Trade) and v is not None}


def _tape(base: int) -> Tape:
    tape = Tape(base)
    # AAA: one trade 30 s late (corrects final buckets), one 2 h late (too late). Late trades
    # keep the venue sequence numbers they were printed with: holes filled later (gap fills).
    for i in range(9):
        tape.quote("AAA", 10.0 * i + 0.5, "100.00")
    for seq, (t_s, px) in enumerate([(10.1, "100.00"), (20.1, "100.02"), (30.1, "99.98"),
                                     (40.1, "100.01"), (50.1, "100.03")], start=1):
        tape.trade("AAA", t_s, px, "10", seq=seq)
    # seq 6 is the 30 s late trade, seq 13 the 2 h late one; both arrive later.
    for seq, (t_s, px) in enumerate([(55.1, "99.99"), (61.0, "100.04"), (70.0, "100.00"),
                                     (80.5, "100.02")], start=7):
        tape.trade("AAA", t_s, px, "10", seq=seq)
    tape.trade("AAA", 50.6, "99.96", "7", seq=6, late_s=30.0, verdict=CORRECTED)
    tape.trade("AAA", 81.0, "100.01", "5", seq=11)
    tape.trade("AAA", 85.2, "100.00", "5", seq=12)
    # Two hours of event time later, the session goes on; then a print from 2 h ago arrives.
    tape.quote("AAA", 7299.5, "100.00")
    for seq, (t_s, px) in enumerate([(7300.0, "100.01"), (7301.3, "99.97"),
                                     (7302.0, "100.00")], start=14):
        tape.trade("AAA", t_s, px, "3", seq=seq)
    tape.trade("AAA", 130.3, "100.02", "4", seq=13, late_s=7172.0, verdict=TOO_LATE)
    tape.trade("AAA", 7303.4, "100.02", "3", seq=17)

    # BBB: in order except a trade 3 s late that still finds its 1 s bucket open (on time).
    for i in range(4):
        tape.quote("BBB", 5.0 * i + 0.2, "50.00")
    for t_s, px in [(1.0, "50.00"), (2.5, "50.02"), (4.0, "49.99"), (6.0, "50.01"),
                    (9.7, "50.03")]:
        tape.trade("BBB", t_s, px, "20")
    tape.trade("BBB", 7.2, "49.98", "15", late_s=3.0)
    for t_s, px in [(11.0, "50.00"), (13.5, "50.02"), (16.0, "50.01")]:
        tape.trade("BBB", t_s, px, "20")
    return tape


def _produce(settings: Settings, tape: Tape, codec: Codec) -> None:
    """In arrival order, keyed by symbol, with the receive time as the Kafka timestamp."""
    producer = Producer({**settings.kafka_config(), "enable.idempotence": True, "acks": "all"})
    failures: list[Any] = []
    for record, recv_us, _ in tape.records:
        topic = TOPIC_TRADES if isinstance(record, Trade) else TOPIC_QUOTES
        producer.produce(settings.topic(topic), codec.encode(record), record.symbol,
                         timestamp=recv_us // 1000,
                         on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(30) == 0
    assert not failures, failures


def _rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql, query_formats={"DateTime64*": "int"}).result_rows]


CANDLE_COLS = "symbol, bucket, open, high, low, close, volume, notional, vwap, trade_count"
TABLES = ((S, "candles_1s"), (MINUTE, "candles_1m"))
COUNT_MASK = (1 << CANDLE_VERSION_SHIFT) - 1


def _run(settings: Settings, codec: Codec) -> dict[str, Any]:
    """One batch run from scratch into a fresh database; what the tables say afterwards."""
    settings = settings.with_overrides(clickhouse_database=f"tf_late_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    run_main(build_flow(settings, tail=False, codec=codec))
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    out: dict[str, Any] = {
        "trades": sorted(_rows(client, "SELECT symbol, venue, ts_event, seq, price, size "
                                       "FROM trades FINAL")),
        "rejected": sorted(_rows(client, "SELECT kind, reason, symbol, venue, ts_event, seq, "
                                         "price, size, detail FROM rejected_ticks FINAL")),
        "quotes": _rows(client, "SELECT count() FROM quotes FINAL")[0][0],
    }
    bases = set()
    for _, table in TABLES:
        # A stored version is the writer's base + the core's version (= trade count): one run
        # is one writer, so one base; the count part is compared with the core.
        rows = _rows(client, f"SELECT {CANDLE_COLS}, version FROM {table} FINAL "
                             "ORDER BY symbol, bucket")
        bases |= {r[-1] >> CANDLE_VERSION_SHIFT for r in rows}
        out[table] = [(*r[:-1], r[-1] & COUNT_MASK) for r in rows]
        # Every version written, max per bucket (independent of when parts merge).
        versions = _rows(client, f"SELECT symbol, bucket, max(version) FROM {table} "
                                 "GROUP BY symbol, bucket")
        bases |= {r[2] >> CANDLE_VERSION_SHIFT for r in versions}
        out[f"{table}_max_version"] = {(r[0], r[1]): r[2] & COUNT_MASK for r in versions}
    assert len(bases) == 1 and bases.pop() > 0
    return out


def _classify(result: dict[str, Any], tape: Tape) -> dict[Trade, str]:
    """Each trade's verdict: rejected with a reason, or accepted (both as the tables tell it);
    an accepted trade is corrected when it arrived beyond the allowed lateness into a bucket
    that held other trades (its 1 s candle's version, = trade count, is above 1), else on
    time. Versions are trade counts, so the tables no longer record how often a bucket was
    emitted; that a correction re-emits is the core's (tests/unit/test_candles.py)."""
    accepted = {(r[0], r[1], r[2], r[3]) for r in result["trades"]}
    rejected = {(r[2], r[3], r[4], r[5]): r[1] for r in result["rejected"] if r[0] == "trade"}
    versions = result["candles_1s_max_version"]
    verdicts: dict[Trade, str] = {}
    for trade, _ in tape.verdicts.items():
        key = (trade.symbol, trade.venue, trade.ts_event, trade.seq)
        if key in rejected:
            verdicts[trade] = rejected[key]
        elif key in accepted:
            bucket = trade.ts_event - trade.ts_event % S
            # Corrected: the trade arrived after its bucket went final (an on-time trade that
            # shares a corrected bucket arrived before, so only the late one counts).
            late_arrival = next(r[1] for r in tape.records if r[0] == trade) - trade.ts_event
            corrected = versions[(trade.symbol, bucket)] > 1 and late_arrival > 5 * S
            verdicts[trade] = CORRECTED if corrected else ON_TIME
        else:
            verdicts[trade] = "missing"
    return verdicts


def test_late_data_corrections_horizon_and_replay(settings: Settings) -> None:
    started = time.monotonic()
    create_topics(settings)
    codec = Codec(LocalCatalogue.load())
    tape = _tape(_base_us())
    _produce(settings, tape, codec)

    expected = tape.verdicts
    accepted = [t for t, v in expected.items() if v != TOO_LATE]
    too_late = [t for t, v in expected.items() if v == TOO_LATE]
    corrected = [t for t, v in expected.items() if v == CORRECTED]
    assert len(too_late) == 1 and len(corrected) == 1

    # The core agrees on the classification in arrival order, and on sorted input the late
    # trades are just trades: the reference for the tables.
    arrival_candles, arrival_rejects = build_candles(expected)
    assert [r.tick for r in arrival_rejects] == too_late
    assert arrival_rejects[0].reason is RejectReason.TOO_LATE
    sorted_candles, sorted_rejects = build_candles(sorted(accepted,
                                                          key=lambda t: (t.ts_event, t.seq)))
    assert not sorted_rejects
    reference = final_candles(sorted_candles)
    assert final_candles(arrival_candles) == reference  # versions included

    first = _run(settings, codec)

    # Classification: on time and corrected trades are clean ticks, the 2 h late one is not.
    assert _classify(first, tape) == expected
    assert first["trades"] == sorted(
        (t.symbol, t.venue, t.ts_event, t.seq, to_decimal(t.price), to_decimal(t.size))
        for t in accepted)
    late = too_late[0]
    assert [r[:6] for r in first["rejected"]] == [
        ("trade", "too_late", late.symbol, late.venue, late.ts_event, late.seq)]
    assert first["quotes"] == sum(isinstance(r, Quote) for r, _, _ in tape.records)

    # Candles: FINAL equals the sorted-order build in every field, version included...
    for width, table in TABLES:
        want = sorted(
            (c.symbol, c.bucket, to_decimal(c.open), to_decimal(c.high), to_decimal(c.low),
             to_decimal(c.close), to_decimal(c.volume), to_decimal(c.notional, 16),
             to_decimal(c.vwap), c.trade_count, c.version)
            for c in reference if c.width_us == width)
        assert first[table] == want, table
        # ...version = trade count, and no row ever written outranks the complete candle (the
        # corrected buckets' earlier emissions had one trade fewer).
        assert all(r[-1] == r[-2] for r in first[table]), table
        assert {(r[0], r[1]): r[-1] for r in first[table]} == first[f"{table}_max_version"]
        fix = corrected[0]
        fixed = (fix.symbol, fix.ts_event - fix.ts_event % width)
        assert first[f"{table}_max_version"][fixed] > 1, table
        # The too-late trade is in no candle (no other trade shares its buckets).
        assert (late.symbol, late.ts_event - late.ts_event % width) not in {
            (r[0], r[1]) for r in first[table]}

    # Replay: from scratch, same topics, fresh database: same verdicts, same tables.
    second = _run(settings, codec)
    assert _classify(second, tape) == expected
    for name in first:
        assert second[name] == first[name], name

    elapsed = time.monotonic() - started
    assert elapsed < 40, f"the test took {elapsed:.1f} s"
