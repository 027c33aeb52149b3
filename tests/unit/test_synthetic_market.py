"""The synthetic market: deterministic, realistic where it claims to be, its spec, its files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.generate import write_market_parquet
from sources.synthetic import (
    CODE_EXECUTION,
    CODE_GARBAGE,
    CODE_QUOTE,
    CODE_TRADE,
    DEFAULT_START_US,
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    Fault,
    Garbage,
    Label,
    Market,
    MarketSpec,
    generate_market,
    make_instruments,
)
from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import ExecutionReport, Quote, Trade
from tests.support.synthetic_spec import SPEC

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def market() -> Market:
    return generate_market(SPEC)


def _content(m: Market) -> tuple[object, ...]:
    return (
        m.trades,
        m.quotes,
        m.executions,
        m.garbage,
        bytes(m.codes),
        list(m.rows),
        list(m.labels),
    )


# -- determinism ---------------------------------------------------------------------------


def test_same_spec_gives_identical_records_and_labels(market: Market) -> None:
    again = generate_market(SPEC)
    assert _content(again) == _content(market)
    assert len(market.trades) > 10_000


def test_a_different_seed_gives_a_different_market(market: Market) -> None:
    other = generate_market(replace(SPEC, seed=12))
    assert other.trades[:100] != market.trades[:100]
    assert other.quotes[:100] != market.quotes[:100]
    assert other.executions[:20] != market.executions[:20]


def test_parquet_files_are_byte_identical_across_runs(tmp_path: Path) -> None:
    spec = replace(SPEC, duration_s=30.0)
    first = write_market_parquet(generate_market(spec), tmp_path / "a")
    second = write_market_parquet(generate_market(spec), tmp_path / "b")
    names = sorted(p.name for p in first)
    assert names == sorted(p.name for p in second)
    assert {"trades.parquet", "quotes.parquet", "executions.parquet", "labels.parquet",
            "instruments.parquet", "garbage.parquet"} <= set(names)  # fmt: skip
    for a, b in zip(sorted(first), sorted(second), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    different = write_market_parquet(generate_market(replace(spec, seed=12)), tmp_path / "c")
    by_name = {p.name: p for p in different}
    assert (
        by_name["trades.parquet"].read_bytes() != (tmp_path / "a" / "trades.parquet").read_bytes()
    )


_DIGEST = """
import hashlib
from sources.synthetic import MarketSpec, generate_market
m = generate_market(MarketSpec(seed=5, duration_s=30.0, fault_rate=0.05, order_rate=5.0))
print(hashlib.sha256(repr((m.trades, m.quotes, m.executions, m.garbage, list(m.labels)))
      .encode()).hexdigest())
"""


def test_output_does_not_depend_on_the_string_hash_seed() -> None:
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST], cwd=REPO, env=env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert len(digests.pop()) == 64


def test_the_order_flow_does_not_change_the_tape(market: Market) -> None:
    quiet = generate_market(replace(SPEC, order_rate=0.0))
    assert quiet.executions == []
    assert quiet.trades == market.trades
    assert quiet.quotes == market.quotes


# -- the clean market ----------------------------------------------------------------------


def test_instruments_are_consistent_reference_data() -> None:
    instruments = make_instruments(MarketSpec(n_symbols=30))
    assert [i.symbol for i in instruments] == [f"SYM{n:03d}" for n in range(1, 31)]
    assert {i.tick_size for i in instruments} == {ONE // 100, 5 * ONE // 100, ONE // 10_000}
    for ins in instruments:
        assert ins.ref_price % ins.tick_size == 0
        assert ins.band_low % ins.tick_size == 0 and ins.band_high % ins.tick_size == 0
        assert 0 < ins.band_low < ins.ref_price < ins.band_high
        assert ins.session_open < ins.session_close


def test_default_start_is_the_new_york_open_on_a_monday() -> None:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(DEFAULT_START_US / 1e6, tz=UTC)
    assert (start.year, start.month, start.day, start.hour, start.minute) == (2026, 1, 5, 14, 30)
    assert start.weekday() == 0


def test_clean_ticks_are_on_the_grid_and_positive(market: Market) -> None:
    ins = {i.symbol: i for i in market.instruments}
    clean = [lab for lab in market.labels if lab.fault == Fault.CLEAN and lab.kind != "execution"]
    assert len(clean) > 50_000
    for lab in clean:
        rec = market.record(lab.pos)
        i = ins[rec.symbol]  # type: ignore[union-attr]
        if isinstance(rec, Trade):
            assert rec.price > 0 and rec.price % i.tick_size == 0
            assert rec.size > 0 and rec.size % i.lot_size == 0
            assert i.band_low <= rec.price <= i.band_high
            assert rec.trade_id == f"{rec.venue}.{rec.symbol}.{rec.seq}"
            assert ("I" in rec.conditions) == (rec.size < 100 * ONE and i.lot_size == ONE)
        else:
            assert isinstance(rec, Quote)
            assert 0 < rec.bid_px < rec.ask_px
            assert rec.bid_px % i.tick_size == 0 and rec.ask_px % i.tick_size == 0
            assert rec.bid_sz > 0 and rec.ask_sz > 0
            assert rec.bid_sz % i.lot_size == 0 and rec.ask_sz % i.lot_size == 0


def test_clean_trades_print_inside_their_venues_prevailing_quote(market: Market) -> None:
    """The prevailing quote is the venue's accepted quote with the latest event time."""
    book: dict[tuple[str, str], Quote] = {}
    checked = at_touch = 0
    for lab in market.labels:
        rec = market.record(lab.pos)
        if lab.kind == "quote" and lab.expected_reason is None:
            assert isinstance(rec, Quote)
            key = (rec.venue, rec.symbol)
            if key not in book or rec.ts_event >= book[key].ts_event:
                book[key] = rec
        elif lab.kind == "trade" and lab.fault == Fault.CLEAN:
            assert isinstance(rec, Trade)
            q = book[(rec.venue, rec.symbol)]
            assert q.ts_event <= rec.ts_event
            assert q.bid_px <= rec.price <= q.ask_px, (rec, q)
            checked += 1
            at_touch += rec.price in (q.bid_px, q.ask_px)
    assert checked > 10_000
    assert at_touch > 0.8 * checked  # mostly at the bid or the ask, some inside


def test_sizes_are_heavy_tailed_and_activity_is_uneven(market: Market) -> None:
    shares = sorted(t.size // ONE for t in market.trades if t.size > 0)
    median = shares[len(shares) // 2]
    assert shares[-1] >= 20 * median  # a heavy tail, not a bell
    per_symbol = Counter(t.symbol for t in market.trades)
    assert per_symbol.most_common()[0][1] > 4 * per_symbol.most_common()[-1][1]
    assert len(per_symbol) == SPEC.n_symbols
    assert {t.venue for t in market.trades} == set(SPEC.venues)


def test_mid_prices_move(market: Market) -> None:
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for t in market.trades:
        by_symbol[t.symbol].append(t.price)
    moved = sum(len(set(p for p in prices if p > 0)) > 5 for prices in by_symbol.values())
    assert moved == SPEC.n_symbols


def test_sequences_count_per_venue_and_symbol_separately_for_trades_and_quotes(
    market: Market,
) -> None:
    seqs: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(list)
    for lab in market.labels:
        if lab.kind in ("trade", "quote") and lab.fault != Fault.DUPLICATE_SEQ:
            assert lab.seq is not None
            seqs[(lab.kind, lab.venue, lab.symbol)].append(lab.seq)
    assert {kind for kind, _, _ in seqs} == {"trade", "quote"}
    for key, got in seqs.items():
        assert sorted(got) == list(range(1, len(got) + 1)), key


def test_in_place_records_arrive_in_event_time_order(market: Market) -> None:
    delayed = {Fault.DUPLICATE_SEQ, Fault.DUPLICATE_EXEC, Fault.OUT_OF_ORDER, Fault.LATE}
    last = 0
    for lab in market.labels:
        if lab.fault not in delayed:
            assert lab.ts_event >= last
            last = lab.ts_event
    assert SPEC.start_us <= market.trades[0].ts_event
    assert last <= SPEC.end_us


def test_stream_yields_topic_key_and_value_in_label_order(market: Market) -> None:
    n = 0
    for (topic, key, value), lab in zip(market.stream(), market.labels, strict=True):
        assert topic == lab.topic and key == lab.key
        assert value is market.record(lab.pos)
        expected_type = {CODE_TRADE: Trade, CODE_QUOTE: Quote, CODE_EXECUTION: ExecutionReport,
                         CODE_GARBAGE: Garbage}[market.codes[lab.pos]]  # fmt: skip
        assert isinstance(value, expected_type)
        if isinstance(value, ExecutionReport):
            assert topic == TOPIC_EXECUTIONS and key == value.account_id
        elif isinstance(value, Trade | Quote):
            assert topic == (TOPIC_TRADES if isinstance(value, Trade) else TOPIC_QUOTES)
            assert key == value.symbol
        n += 1
    assert n == len(market) == len(market.labels)
    assert market.labels[-1] == market.label(n - 1)
    assert market.labels[10:13] == [market.label(i) for i in (10, 11, 12)]


# -- Parquet -------------------------------------------------------------------------------


def _units(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def test_parquet_holds_exactly_the_records_and_labels(tmp_path: Path) -> None:
    m = generate_market(replace(SPEC, duration_s=30.0))
    write_market_parquet(m, tmp_path)
    trades = pq.read_table(tmp_path / "trades.parquet")
    assert trades.schema.names == list(Trade._fields)
    assert str(trades.schema.field("price").type) == "decimal128(18, 8)"
    assert str(trades.schema.field("ts_event").type) == "timestamp[us, tz=UTC]"
    back = [
        Trade(r["symbol"], r["venue"], int(r["ts_event"].timestamp() * 1e6 + 0.5), r["seq"],
              to_units(r["price"]), to_units(r["size"]), r["trade_id"], tuple(r["conditions"]))
        for r in trades.to_pylist()
    ]  # fmt: skip
    assert back == m.trades
    quotes = pq.read_table(tmp_path / "quotes.parquet")
    assert quotes.schema.names == list(Quote._fields)
    assert [to_units(x) for x in quotes.column("ask_px").to_pylist()] == [
        q.ask_px for q in m.quotes
    ]
    executions = pq.read_table(tmp_path / "executions.parquet")
    assert executions.schema.names == list(ExecutionReport._fields)
    rows = executions.to_pylist()
    assert [_units(r["avg_px"]) for r in rows] == [e.avg_px for e in m.executions]
    assert [r["exec_type"] for r in rows] == [e.exec_type.value for e in m.executions]
    labels = pq.read_table(tmp_path / "labels.parquet")
    assert labels.schema.names == list(Label._fields)
    got = labels.to_pylist()
    assert len(got) == len(m)
    for row, lab in zip(got, m.labels, strict=True):
        row["ts_event"] = int(row["ts_event"].timestamp() * 1e6 + 0.5)
        assert Label(**row) == lab
    garbage = pq.read_table(tmp_path / "garbage.parquet").to_pylist()
    assert [g["pos"] for g in garbage] == [lab.pos for lab in m.fault_labels()
                                           if lab.kind == "garbage"]  # fmt: skip
    instruments = pq.read_table(tmp_path / "instruments.parquet").to_pylist()
    assert [to_units(r["tick_size"]) for r in instruments] == [i.tick_size for i in m.instruments]


# -- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"n_symbols": 0},
        {"duration_s": 0},
        {"trade_rate": 0},
        {"fault_rate": 0.9},
        {"venues": ()},
        {"venues": ("XNAS", "XNAS")},
        {"max_trades": -1},
    ],
)
def test_spec_refuses_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MarketSpec(**bad)  # type: ignore[arg-type]


def test_max_trades_stops_the_market_at_that_many_trade_events() -> None:
    m = generate_market(MarketSpec(seed=3, max_trades=2_000, duration_s=10_000.0))
    events = [lab for lab in m.labels if lab.kind == "trade" and lab.fault != Fault.DUPLICATE_SEQ]
    assert len(events) == 2_000
    digest = hashlib.sha256(repr(m.trades).encode()).hexdigest()
    assert (
        digest
        == hashlib.sha256(
            repr(
                generate_market(MarketSpec(seed=3, max_trades=2_000, duration_s=10_000.0)).trades
            ).encode()
        ).hexdigest()
    )
