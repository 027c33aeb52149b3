"""`tapeflow generate`: the synthetic market to Parquet files, to Kafka, or both.

The market's Parquet files are composed here because they join both sides: the simulator's
own tables (`sources.synthetic.tables`) and the record tables and deterministic writer of
`sinks.files.parquet` (sources and sinks never import each other).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from schemas.codec import Codec, codec_for
from sinks.files.parquet import executions_table, quotes_table, trades_table, write_tables
from sinks.kafka.producer import KafkaWriter
from sources.synthetic import (
    DEFAULT_START_US,
    Garbage,
    Market,
    MarketSpec,
    generate_market,
    paused_gc,
)
from sources.synthetic.tables import garbage_table, instruments_table, labels_table
from tapeflow.settings import Settings

US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class MarketRequest:
    seed: int = 7
    symbols: int = 20
    accounts: int = 5
    minutes: float = 5.0
    fault_rate: float = 0.01
    day: int = 0
    """Trading days after the generator's default start (2026-01-05); 0 is that day."""

    def spec(self) -> MarketSpec:
        return MarketSpec(seed=self.seed, n_symbols=self.symbols, n_accounts=self.accounts,
                          duration_s=self.minutes * 60.0, fault_rate=self.fault_rate,
                          start_us=DEFAULT_START_US + self.day * US_PER_DAY)


@dataclass
class GenerateReport:
    summary: dict[str, int]
    files: list[Path] = field(default_factory=list)
    produced: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = ["generated: " + ", ".join(f"{k} {v:,}" for k, v in self.summary.items())]
        out += [f"wrote {p}" for p in self.files]
        out += [f"produced {n:,} records to {t}" for t, n in sorted(self.produced.items())]
        return out


def market_tables(market: Market) -> Iterator[tuple[str, pa.Table]]:
    """The market's files as (name, Arrow table), each built when asked for, so that the
    writer encodes one while the next is built; the labels reuse the trades' and quotes'
    columns."""
    yield "instruments", instruments_table(market.instruments)
    trades = trades_table(market.trades)
    yield "trades", trades
    quotes = quotes_table(market.quotes)
    yield "quotes", quotes
    yield "executions", executions_table(market.executions)
    yield "garbage", garbage_table(market)
    yield "labels", labels_table(market, trades, quotes)


def write_market_parquet(market: Market, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write instruments, trades, quotes, executions, garbage and labels `.parquet` into
    `out_dir` (created if needed), byte for byte the same for the same market (and pyarrow
    version); returns their paths in that order. Columns: docs/synthetic.md."""
    with paused_gc():
        return write_tables(market_tables(market), out_dir)


def produce_market(settings: Settings, market: Market, codec: Codec) -> Counter[str]:
    """Produce every record in arrival order, keyed as the topics expect; flush at the end."""
    writer = KafkaWriter(settings.kafka_config())
    counts: Counter[str] = Counter()
    encode = codec.encode
    for topic, key, record in market.stream():
        value = record.frame(encode) if isinstance(record, Garbage) else encode(record)
        full_topic = settings.topic(topic)
        writer.send(full_topic, value, key=key)
        counts[full_topic] += 1
    writer.flush()
    return counts


def run_generate(settings: Settings, request: MarketRequest, *, out: Path | None,
                 kafka: bool) -> GenerateReport:
    market = generate_market(request.spec())
    report = GenerateReport(summary=market.summary())
    if out is not None:
        report.files = write_market_parquet(market, out)
    if kafka:
        report.produced = produce_market(settings, market, codec_for(settings, register=True))
    return report
