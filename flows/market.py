"""The market dataflow: the tape in, clean ticks, rejections, candles and marks out.

```
md.trades + md.quotes --(Kafka source, errors logged)--> decode --undecodable--> tapeflow.dlq
    --> key by symbol --> one stateful step per symbol (tapeflow.core.market.symbol_step:
        merge trades and quotes, tick filter, candles, marks; notify_at closes idle buckets)
    --> clean trades/quotes, rejected_ticks, candles_* --> ClickHouse (batched, idempotent)
    --> marks (last clean trade, throttled) --> md.marks
    --> closed and corrected candles --> md.candles (the live view, any subscriber)
```

Composition only: the rules are in `tapeflow/core/`, the writers in `sinks/`. `build_flow` is a
factory so tests can swap the source and the sinks. Run it with
`python -m bytewax.run flows.market:flow` (built from `Settings()` on first access) or
`flows.market:get_flow()`. See docs/flows.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.access import check_kafka_access
from flows.gap_alerts import GapAlerts, add_gap_alerts, optional_gap_alerts
from flows.market_logic import FirstTick, SymbolLogic, TickDecoder
from flows.operators import decode_or_dead_letter, split_dead_letters, write_dead_letters
from flows.spec import FlowRequest
from schemas.catalogue import (
    TOPIC_CANDLES,
    TOPIC_DLQ,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
)
from schemas.codec import Codec, codec_for
from sinks.clickhouse.flow_sink import ClickHouseSink, clickhouse_market_mapper
from sinks.dead_letters import store_dead_letters
from sinks.kafka.flow_sink import KafkaRecordSink
from sinks.versions import candle_version_base
from sources.kafka.flow_source import kafka_source as sharded_kafka_source
from tapeflow.core.market.candle_buckets import Candle
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.market.symbol_step import (
    DEFAULT_MARKET_CONFIG,
    MarketConfig,
    MarkTrade,
    Output,
)
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

FLOW_ID = "tapeflow-market"


@dataclass(frozen=True)
class MarketSinks:
    """Where the flow's outputs go; each takes (key, record) pairs."""

    clickhouse: Sink[Any]
    """Trade, Quote, Rejection and Candle records."""
    dlq: Sink[Any]
    """`flows.operators.KeyedLetter`s: each dead letter under its original Kafka key."""
    marks: Sink[Any]
    """`tapeflow.core.market.symbol_step.MarkTrade` records."""
    candles: Sink[Any]
    """Closed and corrected `Candle`s (the same as ClickHouse gets), for md.candles."""


def kafka_source(settings: Settings, *, tail: bool = True, batch_size: int | None = None,
                 shard: tuple[int, int] | None = None, group: str | None = None) -> Source[Any]:
    """Bytewax's Kafka source over md.trades and md.quotes, errors as items.

    `tail=False` stops at the end of what the partitions hold (batch); `shard=(i, K)` reads
    only partitions p with p % K == i (sources/kafka/flow_source.py); `group` is the consumer group
    the offsets are committed to after each snapshot, for lag monitoring.
    """
    topics = [settings.topic(TOPIC_TRADES), settings.topic(TOPIC_QUOTES)]
    return sharded_kafka_source(settings, topics, role="market", tail=tail,
                                batch_size=batch_size or settings.kafka.source_batch_size,
                                shard=shard, group=group)


def default_sinks(settings: Settings, codec: Codec) -> MarketSinks:
    url = settings.clickhouse_url()
    database = settings.clickhouse.database
    conf = settings.kafka_config("market")
    deadline = settings.runtime.sink_retry_deadline_s
    # This process's candles replace every earlier writer's, even with fewer trades (a replay
    # after a crash, a restart with a tighter filter): `sinks.versions.candle_version_base`.
    base = candle_version_base()
    mapper = clickhouse_market_mapper(base)
    dlq_topic = settings.topic(TOPIC_DLQ)
    return MarketSinks(
        clickhouse=ClickHouseSink(lambda: open_clickhouse(url, database), deadline_s=deadline,
                                  max_rows=settings.clickhouse.batch_rows,
                                  max_age_s=settings.clickhouse.batch_age_s, mapper=mapper,
                                  dead_letters=store_dead_letters(
                                      conf, dlq_topic, codec.encode, "clickhouse", deadline)),
        dlq=KafkaRecordSink(conf, dlq_topic, lambda kl: codec.encode(kl.letter),
                            key=lambda kl: kl.key or None, deadline_s=deadline),
        marks=KafkaRecordSink(conf, settings.topic(TOPIC_MARKS), lambda m: codec.encode(m.trade),
                              key=lambda m: m.symbol, deadline_s=deadline),
        # The stores' version (writer base + trade count), so a subscriber that keeps the
        # highest version per bucket keeps what ClickHouse keeps, across restarts too.
        candles=KafkaRecordSink(conf, settings.topic(TOPIC_CANDLES),
                                lambda c: codec.encode(c._replace(version=base + c.version)),
                                key=lambda c: c.symbol, deadline_s=deadline),
    )


@dataclass(frozen=True)
class MarketStreams:
    """What the market part hands to a flow that composes it (`flows.all`)."""

    marks: op.KeyedStream[MarkTrade]
    """Throttled marks, keyed by symbol (already written to md.marks)."""
    gaps: op.KeyedStream[SequenceGap]
    """Feed sequence gaps, keyed by symbol."""


def is_mark(item: tuple[str, Output]) -> TypeGuard[tuple[str, MarkTrade]]:
    return isinstance(item[1], MarkTrade)


def is_candle(item: tuple[str, Any]) -> bool:
    return isinstance(item[1], Candle)


def is_gap(item: tuple[str, Output]) -> TypeGuard[tuple[str, SequenceGap]]:
    return isinstance(item[1], SequenceGap)


def add_market(
    flow: Dataflow,
    settings: Settings,
    *,
    source: Source[Any],
    sinks: MarketSinks,
    config: MarketConfig,
    codec: Codec,
    prefix: str = "",
) -> MarketStreams:
    """Add the market steps to `flow` (step ids under `prefix`) and return its marks and gaps."""
    decoder = TickDecoder(codec, {settings.topic(TOPIC_TRADES): "Trade",
                                  settings.topic(TOPIC_QUOTES): "Quote"})
    inp = op.input(f"{prefix}md_in", flow, source)
    ticks = decode_or_dead_letter(f"{prefix}decode", inp, decoder, "market")

    first_tick = FirstTick()  # shared by the keys: resumed keys measure quiet time from it
    outputs = split_dead_letters(
        f"{prefix}process_errors",
        op.stateful(f"{prefix}market", ticks.oks,
                    lambda resume: SymbolLogic(config, resume, first_tick=first_tick)))
    marks = op.branch(f"{prefix}marks", outputs.oks, is_mark)
    gaps = op.branch(f"{prefix}gaps", marks.falses, is_gap)

    write_dead_letters(f"{prefix}dlq", sinks.dlq, ticks.errs, outputs.errs)
    op.output(f"{prefix}clickhouse_out", gaps.falses, sinks.clickhouse)
    op.output(f"{prefix}marks_out", marks.trues, sinks.marks)
    op.output(f"{prefix}candles_out", op.filter(f"{prefix}candles", gaps.falses, is_candle),
              sinks.candles)
    return MarketStreams(marks.trues, gaps.trues)


def build_flow(
    settings: Settings,
    *,
    source: Source[Any] | None = None,
    sinks: MarketSinks | None = None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
    tail: bool = True,
    codec: Codec | None = None,
    gap_alerts: GapAlerts | None = None,
) -> Dataflow:
    """The market dataflow for `settings`.

    `source` emits Kafka-shaped messages (`bytewax.connectors.kafka.KafkaSourceMessage`: topic,
    partition, offset, key, value, timestamp) or `KafkaError`s; default: the Kafka topics
    (`tail=False` for a batch run to the current end). `sinks` default to ClickHouse and
    Kafka from `settings`. `gap_alerts` turns feed sequence gaps into `feed_gap` alerts
    (`flows.gap_alerts.gap_alerts_for`); without it gaps are counted by the filter only.
    """
    codec = codec or codec_for(settings)
    source = source or kafka_source(settings, tail=tail)
    sinks = sinks or default_sinks(settings, codec)
    flow = Dataflow(FLOW_ID)
    streams = add_market(flow, settings, source=source, sinks=sinks, config=config, codec=codec)
    if gap_alerts is not None:
        add_gap_alerts(streams.gaps, gap_alerts.limits, gap_alerts.sinks)
    return flow


def check_clickhouse(settings: Settings) -> None:
    """ClickHouse answers (one-line error naming it and where, otherwise)."""
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    try:
        client.command("SELECT 1")
    finally:
        client.close()


class MarketFlow:
    """`tapeflow run market`."""

    name = "market"
    summary = ("md.trades + md.quotes -> clean ticks, rejections, candles (ClickHouse), "
               "md.marks, tapeflow.dlq, feed-gap alerts")

    def build(self, settings: Settings, request: FlowRequest) -> Dataflow:
        check_kafka_access(settings, "market", request.group)
        check_clickhouse(settings)
        source = kafka_source(settings, tail=not request.batch, shard=request.shard,
                              group=request.group)
        return build_flow(settings, source=source,
                          config=settings.market.core_config(batch=request.batch),
                          gap_alerts=optional_gap_alerts(settings))


SPEC = MarketFlow()


def get_flow() -> Dataflow:
    """The flow from `Settings()` (environment and defaults): `flows.market:get_flow()`."""
    return build_flow(Settings())


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run flows.market:flow`: built on first access, not at import, so
    # importing this module (tests, the CLI) reads no settings and opens nothing.
    if name == "flow":
        return get_flow()
    raise AttributeError(name)
