"""Both dataflows as one: the market and trading parts in one Bytewax dataflow.

Why: the embedded ClickHouse opens in one process only (docs/design.md, "Local services"), so on
the embedded defaults the two flows must share a process. Composing them in one dataflow
also hands the marks over directly: the trading part receives each throttled mark from the
market part (still written to md.marks for other consumers) instead of reading md.marks,
so a `--batch` run marks positions with the marks of the same run. Feed sequence gaps from
the market part become `feed_gap` alerts. One recovery store holds both parts' state, so a
restart resumes them together.

```
md.trades + md.quotes --> market part --> ClickHouse, md.marks, tapeflow.dlq
                               |--marks (in the dataflow)--> trading part <-- oms.executions
                               |--gaps--> feed-gap alerts --> risk.alerts, PG/CH alerts
```
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bytewax.dataflow import Dataflow

from flows import market, trading
from flows.access import check_kafka_access
from flows.gap_alerts import add_gap_alerts
from flows.spec import FlowRequest
from schemas.codec import codec_for
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig
from tapeflow.core.trading.shard_step import DEFAULT_SHARD_CONFIG, ShardConfig
from tapeflow.settings import Settings

FLOW_ID = "tapeflow-all"


def kafka_source(settings: Settings, *, tail: bool = True,
                 shard: tuple[int, int] | None = None,
                 group: str | None = None) -> tuple[Any, Any]:
    """The market source and the executions-only trading source (one group: no topic in
    common)."""
    return (market.kafka_source(settings, tail=tail, shard=shard, group=group),
            trading.kafka_source(settings, tail=tail, shard=shard, marks=False, group=group))


def build_flow(settings: Settings, *, source: tuple[Any, Any] | None = None,
               config: MarketConfig = DEFAULT_MARKET_CONFIG,
               shard_config: ShardConfig = DEFAULT_SHARD_CONFIG, tail: bool = True) -> Dataflow:
    """Both flows on the stores and topics of `settings` (services checked first)."""
    report = trading.check_services(settings, settings.runtime.service_timeout_s)
    codec = codec_for(settings)
    market_source, trading_source = source or kafka_source(settings, tail=tail)
    trading_sinks = trading.default_sinks(settings, codec)  # the gap alerts' sinks too
    limits = trading.refreshing_limits(settings, settings.trading.limits_refresh_s)

    flow = Dataflow(FLOW_ID)
    streams = market.add_market(flow, settings, source=market_source,
                                sinks=market.default_sinks(settings, codec), config=config,
                                codec=codec, prefix="market_")
    add_gap_alerts(streams.gaps, limits, trading_sinks)
    trading.add_trading(flow, settings, source=trading_source, sinks=trading_sinks,
                        limits=limits, partitions=range(report.executions_partitions),
                        codec=codec, marks=streams.marks, shard_config=shard_config,
                        tick=timedelta(seconds=settings.trading.timer_s), prefix="trading_")
    return flow


class AllFlow:
    """`tapeflow run all`: both flows in one process, the marks handed over inside."""

    name = "all"
    summary = "market and trading in one dataflow (what the embedded ClickHouse needs)"

    def build(self, settings: Settings, request: FlowRequest) -> Dataflow:
        check_kafka_access(settings, "market", request.group)
        check_kafka_access(settings, "trading", request.group)
        source = kafka_source(settings, tail=not request.batch, shard=request.shard,
                              group=request.group)
        return build_flow(settings, source=source,
                          config=settings.market.core_config(batch=request.batch),
                          shard_config=settings.trading.core_config())


SPEC = AllFlow()


def get_flow() -> Dataflow:
    """The flow from `Settings()`: `python -m bytewax.run flows.all:get_flow()`."""
    return build_flow(Settings())
