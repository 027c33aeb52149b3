"""The market dataflow: the tape in, clean ticks, rejections, candles and marks out.

```
md.trades + md.quotes --(Kafka source: one batch per poll of a partition; errors logged)-->
    decode the batch (Avro blocks, fixed-point columns) --undecodable--> tapeflow.dlq
    --> key by partition --> one stateful step per partition, holding its symbols
        (tapeflow.core.market.symbol_step per symbol: merge trades and quotes, tick filter,
        candles, marks; each symbol's wall-clock wake-ups close idle buckets)
    --> clean trades/quotes, rejected_ticks, candles_* --> ClickHouse (Arrow, batched,
        idempotent)
    --> marks (last clean trade, throttled) --> md.marks
    --> closed and corrected candles --> md.candles (the live view, any subscriber)
```

Items are batches, not ticks: Bytewax's cost is per item, so one item per poll of a partition
(up to `TAPEFLOW_KAFKA_SOURCE_BATCH_SIZE` messages) is what lets the flow keep up with a feed.
md.trades and md.quotes must be co-partitioned (same partition count, keyed by symbol):
partition p of both carries the same symbols, so its state is one key. `kafka_source` checks
the counts and stops with a one-line error when they differ.

Composition only: the rules are in `tapeflow/core/`, the writers in `sinks/`. `build_flow` is a
factory so tests can swap the source and the sinks. Run it with
`python -m bytewax.run flows.market:flow` (built from `Settings()` on first access) or
`flows.market:get_flow()`. See docs/flows.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.access import check_kafka_access
from flows.gap_alerts import GapAlerts, add_gap_alerts, optional_gap_alerts
from flows.market_logic import FirstTick, PartitionLogic, TickBatchDecoder, partition_key
from flows.operators import decode_batches_or_dead_letter, write_dead_letter_batches
from flows.spec import FlowRequest
from schemas.catalogue import (
    TOPIC_CANDLES,
    TOPIC_DLQ,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
)
from schemas.codec import Codec, codec_for
from sinks.clickhouse.flow_sink import ClickHouseArrowSink
from sinks.dead_letters import store_dead_letters
from sinks.kafka.flow_sink import KafkaRecordSink
from sinks.versions import candle_version_base
from sources.kafka.flow_source import kafka_source as sharded_kafka_source
from tapeflow.core.market.candle_buckets import Candle
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig, MarkTrade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.kafka import TopicError, partition_counts
from tapeflow.settings import Settings

FLOW_ID = "tapeflow-market"


@dataclass(frozen=True)
class MarketSinks:
    """Where the flow's outputs go; each takes (key, list of records) pairs, one list per
    batch."""

    clickhouse: Sink[Any]
    """Lists of Trade, Quote, Rejection and Candle records."""
    dlq: Sink[Any]
    """Lists of `flows.operators.KeyedLetter`s: each dead letter under its original Kafka
    key."""
    marks: Sink[Any]
    """Lists of `tapeflow.core.market.symbol_step.MarkTrade` records."""
    candles: Sink[Any]
    """Lists of closed and corrected `Candle`s (those ClickHouse gets), for md.candles."""


def check_copartitioned(settings: Settings) -> None:
    """md.trades and md.quotes have the same partition count (one-line error otherwise).

    Why: the flow's state is keyed by partition, and a symbol's trades and quotes must meet in
    one state (the merge and the outside-quote rule read both). With the same count and the
    same key (the symbol), the producers' partitioner puts a symbol on the same partition of
    both topics."""
    trades, quotes = settings.topic(TOPIC_TRADES), settings.topic(TOPIC_QUOTES)
    counts = partition_counts(settings.kafka_config("market"), [trades, quotes],
                              timeout_s=settings.runtime.service_timeout_s,
                              bootstrap=settings.kafka.bootstrap)
    if counts[trades] != counts[quotes]:
        raise TopicError(
            f"{trades} has {counts[trades]} partitions and {quotes} has {counts[quotes]}: the "
            "market flow needs them co-partitioned (the same count, both keyed by symbol); "
            "recreate one with the other's count")


def kafka_source(settings: Settings, *, tail: bool = True, batch_size: int | None = None,
                 shard: tuple[int, int] | None = None, group: str | None = None) -> Source[Any]:
    """Bytewax's Kafka source over md.trades and md.quotes, one `MessageBatch` per poll of a
    partition, consumer errors inside the batches; checks first that the topics are
    co-partitioned (`check_copartitioned`).

    `tail=False` stops at the end of what the partitions hold (batch); `shard=(i, K)` reads
    only partitions p with p % K == i (sources/kafka/flow_source.py); `group` is the consumer
    group the offsets are committed to after each snapshot, for lag monitoring.
    """
    check_copartitioned(settings)
    topics = [settings.topic(TOPIC_TRADES), settings.topic(TOPIC_QUOTES)]
    return sharded_kafka_source(settings, topics, role="market", tail=tail,
                                batch_size=batch_size or settings.kafka.source_batch_size,
                                shard=shard, group=group, batches=True)


def default_sinks(settings: Settings, codec: Codec) -> MarketSinks:
    url = settings.clickhouse_url()
    database = settings.clickhouse.database
    conf = settings.kafka_config("market")
    deadline = settings.runtime.sink_retry_deadline_s
    # This process's candles replace every earlier writer's, even with fewer trades (a replay
    # after a crash, a restart with a tighter filter): `sinks.versions.candle_version_base`.
    version_base = candle_version_base()
    dlq_topic = settings.topic(TOPIC_DLQ)
    return MarketSinks(
        clickhouse=ClickHouseArrowSink(lambda: open_clickhouse(url, database),
                                       deadline_s=deadline,
                                       max_rows=settings.clickhouse.batch_rows,
                                       max_age_s=settings.clickhouse.batch_age_s,
                                       version_base=version_base,
                                       dead_letters=store_dead_letters(
                                           conf, dlq_topic, codec.encode, "clickhouse",
                                           deadline)),
        dlq=KafkaRecordSink(conf, dlq_topic, lambda kl: codec.encode(kl.letter),
                            key=lambda kl: kl.key or None, deadline_s=deadline, batched=True),
        marks=KafkaRecordSink(conf, settings.topic(TOPIC_MARKS), lambda m: codec.encode(m.trade),
                              key=lambda m: m.symbol, deadline_s=deadline, batched=True),
        # The stores' version (writer base + trade count), so a subscriber that keeps the
        # highest version per bucket keeps what ClickHouse keeps, across restarts too.
        candles=KafkaRecordSink(
            conf, settings.topic(TOPIC_CANDLES),
            lambda c: codec.encode(c._replace(version=version_base + c.version)),
            key=lambda c: c.symbol, deadline_s=deadline, batched=True),
    )


@dataclass(frozen=True)
class MarketStreams:
    """What the market part hands to a flow that composes it (`flows.all`)."""

    marks: op.KeyedStream[MarkTrade]
    """Throttled marks, keyed by symbol (already written to md.marks)."""
    gaps: op.KeyedStream[SequenceGap]
    """Feed sequence gaps, keyed by symbol."""


def candles_of(records: list[Any]) -> list[Candle] | None:
    """The candles of one batch's records (None: there are none, nothing to send)."""
    return [r for r in records if isinstance(r, Candle)] or None


def add_market(
    flow: Dataflow,
    settings: Settings,
    *,
    source: Source[Any],
    sinks: MarketSinks,
    config: MarketConfig,
    codec: Codec,
    prefix: str = "",
    min_block: int | None = None,
) -> MarketStreams:
    """Add the market steps to `flow` (step ids under `prefix`) and return its marks and gaps.

    `source` emits `sources.kafka.flow_source.MessageBatch`es of md.trades and md.quotes.
    `min_block`: fewest frames decoded as one Avro block (default `schemas.batch_decode`'s).

    The input and state step ids differ from the earlier per-symbol flow's (`md_in`,
    `market`), so a recovery store written by it is not resumed into this shape: the flow
    starts from the beginning of the topics, and the idempotent sinks absorb the replay.
    """
    decoder = TickBatchDecoder(codec, {settings.topic(TOPIC_TRADES): "Trade",
                                       settings.topic(TOPIC_QUOTES): "Quote"},
                               **({} if min_block is None else {"min_block": min_block}))
    inp = op.input(f"{prefix}md_batches", flow, source)
    decoded = decode_batches_or_dead_letter(f"{prefix}decode", inp, decoder, "market")
    keyed = op.key_on(f"{prefix}by_partition", decoded.oks, partition_key)

    first_tick = FirstTick()  # shared by the keys: resumed symbols measure quiet time from it
    outs = op.stateful_batch(
        f"{prefix}market_partitions", keyed,
        lambda resume: PartitionLogic(config, resume, first_tick=first_tick))
    records = op.filter_map(f"{prefix}records", outs,
                            lambda kv: (kv[0], kv[1].records) if kv[1].records else None)
    mark_lists = op.filter_map(f"{prefix}mark_lists", outs,
                               lambda kv: (kv[0], kv[1].marks) if kv[1].marks else None)
    marks = op.flat_map(f"{prefix}marks", outs,
                        lambda kv: [(m.symbol, m) for m in kv[1].marks])
    gaps = op.flat_map(f"{prefix}gaps", outs, lambda kv: [(g.symbol, g) for g in kv[1].gaps])
    letters = op.filter_map(f"{prefix}process_errors", outs, lambda kv: kv[1].letters or None)

    write_dead_letter_batches(f"{prefix}dlq", sinks.dlq, decoded.errs, letters)
    op.output(f"{prefix}clickhouse_out", records, sinks.clickhouse)
    op.output(f"{prefix}marks_out", mark_lists, sinks.marks)
    candle_lists = op.filter_map_value(f"{prefix}candle_lists", records, candles_of)
    op.output(f"{prefix}candles_out", candle_lists, sinks.candles)
    return MarketStreams(marks, gaps)


def build_flow(
    settings: Settings,
    *,
    source: Source[Any] | None = None,
    sinks: MarketSinks | None = None,
    config: MarketConfig = DEFAULT_MARKET_CONFIG,
    tail: bool = True,
    codec: Codec | None = None,
    gap_alerts: GapAlerts | None = None,
    min_block: int | None = None,
) -> Dataflow:
    """The market dataflow for `settings`.

    `source` emits `sources.kafka.flow_source.MessageBatch`es (one poll of one partition:
    topic, partition, and per message its key, value, offset and receive time, plus the
    poll's consumer errors); default: the Kafka topics (`tail=False` for a batch run to the
    current end). `sinks` default to ClickHouse and
    Kafka from `settings`. `gap_alerts` turns feed sequence gaps into `feed_gap` alerts
    (`flows.gap_alerts.gap_alerts_for`); without it gaps are counted by the filter only.
    `min_block`: fewest frames decoded as one Avro block (tests set 1 to use blocks always).
    """
    codec = codec or codec_for(settings)
    source = source or kafka_source(settings, tail=tail)
    sinks = sinks or default_sinks(settings, codec)
    flow = Dataflow(FLOW_ID)
    streams = add_market(flow, settings, source=source, sinks=sinks, config=config, codec=codec,
                         min_block=min_block)
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
        source = kafka_source(settings, tail=not request.batch, shard=request.shard,
                              group=request.group)
        check_clickhouse(settings)
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
