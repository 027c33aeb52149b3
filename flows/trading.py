"""The trading dataflow: execution reports and marks in; orders, positions, P&L and alerts out.

```
oms.executions + oms.cash + md.marks --(Kafka source)--> decode --undecodable--> tapeflow.dlq
    --> reports and cash movements keyed by their partition; each mark broadcast to every key
    --> one stateful step per partition (tapeflow.core.trading.shard_step: accounts + own
        marks table; order state machine, positions and P&L, risk rules; notify_at runs the
        timer rules and emits provisional P&L snapshots)
    --> orders, positions, accounts, execution_log, cash_movements, alerts --> Postgres (the
        latest state per key per batch, COPY + guarded upserts, on a writer thread)
    --> executions, cash_movements, pnl_snapshots, alerts --> ClickHouse (Arrow batches, on a
        writer thread)
    --> rows a store refuses for good, records with no storable row --> tapeflow.dlq
    --> alerts --> risk.alerts (as soon as the step returns: producer linger 5 ms; ids
        already on the topic are not re-sent)
```

Risk limits and session hours come from Postgres (`risk_limits`, `instruments`) at start and
are reloaded every `limits_refresh_s` of wall time (`sources.postgres.limits`). Before the
dataflow is built, every service must answer within `timeout_s` (`check_services`).

Composition only: the rules are in `tapeflow/core/`, the writers in `sinks/`. `build_flow` is a
factory so tests can swap the source, the sinks and the limits. Run it with
`python -m bytewax.run flows.trading:flow` (built from `Settings()` on first access). See
docs/flows.md, "Trading flow".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.access import check_kafka_access
from flows.operators import (
    KeyedLetter,
    decode_or_dead_letter,
    split_dead_letters,
    write_dead_letters,
)
from flows.spec import FlowRequest
from flows.trading_logic import (
    ShardLogic,
    TradingDecoder,
    broadcast_mark,
    shard_key,
)
from schemas.catalogue import TOPIC_ALERTS, TOPIC_CASH, TOPIC_DLQ, TOPIC_EXECUTIONS, TOPIC_MARKS
from schemas.codec import Codec, codec_for
from sinks.clickhouse.flow_sink import TradingClickHouseSink
from sinks.dead_letters import store_dead_letters
from sinks.kafka.flow_sink import DedupKafkaRecordSink, KafkaRecordSink
from sinks.postgres.flow_sink import PostgresSink
from sinks.postgres.writer import PostgresWriter
from sinks.versions import restart_version_base
from sources.kafka.flow_source import kafka_source as sharded_kafka_source
from sources.kafka.topic_reader import recent_identities
from sources.postgres.limits import RefreshingConfig, postgres_loader
from tapeflow.core.market.symbol_step import MarkTrade
from tapeflow.core.models import RiskAlert
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    DEFAULT_SHARD_CONFIG,
    CashResult,
    ExecutionResult,
    PnlSnapshot,
    ShardConfig,
    ShardOutput,
    StateChange,
    is_redelivery,
)
from tapeflow.errors import StoreUnavailableError, UserError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.kafka import partition_counts
from tapeflow.services.kafka_access import flow_group
from tapeflow.settings import KafkaRole, Settings

FLOW_ID = "tapeflow-trading"
ALERT_LINGER_MS = 5
"""How long the alert producer may hold an alert to fill a batch (issue 12: a few ms)."""


@dataclass(frozen=True)
class TradingSinks:
    """Where the flow's outputs go; each takes (key, record) pairs."""

    postgres: Sink[Any]
    """`ExecutionResult`, `CashResult` and `StateChange` records."""
    clickhouse: Sink[Any]
    """`ExecutionResult`, `CashResult`, `PnlSnapshot` and `RiskAlert` records."""
    alerts: Sink[Any]
    """`RiskAlert` records (risk.alerts)."""
    dlq: Sink[Any]
    """`flows.operators.KeyedLetter`s: each dead letter under its original Kafka key."""


@dataclass(frozen=True)
class ServiceReport:
    executions_partitions: int


def postgres_dsn(settings: Settings) -> str:
    if settings.postgres.dsn is None:
        raise StoreUnavailableError(
            "no Postgres DSN: set TAPEFLOW_POSTGRES_DSN, or start the flow with "
            "`tapeflow run trading`, which starts the embedded Postgres")
    return settings.postgres.dsn.get_secret_value()


def check_services(settings: Settings, timeout_s: float = 10.0) -> ServiceReport:
    """Kafka, Postgres and ClickHouse must each answer within `timeout_s`, before the flow
    starts: a clear error now instead of a hang or a panic inside the dataflow."""
    executions, cash = settings.topic(TOPIC_EXECUTIONS), settings.topic(TOPIC_CASH)
    counts = partition_counts(settings.kafka_config("trading"),
                              [executions, cash, settings.topic(TOPIC_MARKS)],
                              timeout_s=timeout_s, bootstrap=settings.kafka.bootstrap)
    parts = counts[executions]
    if counts[cash] != parts:
        raise UserError(f"{cash} has {counts[cash]} partitions and {executions} {parts}: "
                        "an account's cash movements and reports must share a partition "
                        "number (give both topics the same partition count)")
    postgres_loader(postgres_dsn(settings), settings.postgres.schema,
                    connect_timeout=max(1, int(timeout_s)))()
    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    try:
        client.command("SELECT 1")
    except Exception as exc:
        raise StoreUnavailableError(f"ClickHouse did not answer: {exc}") from None
    return ServiceReport(parts)


def kafka_source(settings: Settings, *, tail: bool = True, batch_size: int | None = None,
                 shard: tuple[int, int] | None = None, marks: bool = True,
                 group: str | None = None) -> Source[Any]:
    """Bytewax's Kafka source over oms.executions, oms.cash and md.marks, errors as items.

    Every shard reads all of md.marks: any of its accounts may hold any symbol. `marks=False`
    reads the executions and cash only (`flows.all` hands the marks over inside the
    dataflow).

    `tail=False` stops at the end of what the partitions hold (batch); `shard=(i, K)` reads
    only partitions p with p % K == i (sources/kafka/flow_source.py).
    """
    inputs = [settings.topic(TOPIC_EXECUTIONS), settings.topic(TOPIC_CASH)]
    batch_size = batch_size or settings.trading.source_batch_size
    if not marks:
        return sharded_kafka_source(settings, inputs, role="trading", tail=tail,
                                    batch_size=batch_size, shard=shard, group=group)
    marks_topic = settings.topic(TOPIC_MARKS)
    return sharded_kafka_source(settings, [*inputs, marks_topic], role="trading", tail=tail,
                                batch_size=batch_size, shard=shard,
                                shared_topics=frozenset({marks_topic}), group=group)


def default_sinks(settings: Settings, codec: Codec, *, role: KafkaRole = "trading",
                  desks: bool = True) -> TradingSinks:
    """The stores and topics of `settings`, Kafka as the principal of `role`. Alerts go to
    risk.alerts and, with `desks`, a copy of each to its account's desk topic
    (`TAPEFLOW_ACCESS_DESKS`; docs/security.md): feed-gap alerts of a market flow, which
    belong to no account and no desk, need neither the desk topics nor their ACLs."""
    url = settings.clickhouse_url()
    database = settings.clickhouse.database
    dsn, schema = postgres_dsn(settings), settings.postgres.schema
    conf = settings.kafka_config(role)
    base = restart_version_base()  # this process's rows outrank a killed one's
    alerts_topic = settings.topic(TOPIC_ALERTS)
    desk_topics = ({account: settings.desk_topic(desk)
                    for account, desk in settings.access.desk_of().items()} if desks else {})
    group = flow_group(settings, role)

    def alert_id_of(raw: bytes) -> str:
        alert: RiskAlert = codec.decode(raw, expect="RiskAlert")
        return alert.alert_id

    def desk_topic(alert: RiskAlert) -> str | None:
        return desk_topics.get(alert.account_id or "")

    deadline = settings.runtime.sink_retry_deadline_s  # a store outage shorter than this only waits
    dlq_topic = settings.topic(TOPIC_DLQ)
    return TradingSinks(
        postgres=PostgresSink(lambda: PostgresWriter.from_dsn(
            dsn, schema, deadline_s=deadline, max_age_s=settings.postgres.batch_age_s),
            version_base=base,
            dead_letters=store_dead_letters(conf, dlq_topic, codec.encode, "postgres",
                                            deadline)),
        clickhouse=TradingClickHouseSink(lambda: open_clickhouse(url, database),
                                         deadline_s=deadline, version_base=base,
                                         max_rows=settings.clickhouse.batch_rows,
                                         max_age_s=settings.clickhouse.batch_age_s,
                                         dead_letters=store_dead_letters(
                                             conf, dlq_topic, codec.encode, "clickhouse",
                                             deadline)),
        alerts=DedupKafkaRecordSink(
            conf, alerts_topic, encode=codec.encode,
            key=lambda alert: alert.account_id, identity=lambda alert: alert.alert_id,
            recent=lambda topic, n: recent_identities(conf, topic, alert_id_of, n, group=group),
            copy_to=desk_topic, copy_topics=sorted(set(desk_topics.values())),
            deadline_s=deadline, linger_ms=ALERT_LINGER_MS),
        dlq=KafkaRecordSink(conf, dlq_topic, lambda kl: codec.encode(kl.letter),
                            key=lambda kl: kl.key or None, deadline_s=deadline),
    )


def _alerts_of(item: ShardOutput) -> tuple[RiskAlert, ...]:
    if isinstance(item, ExecutionResult | CashResult | StateChange):
        return item.output.alerts
    return ()


def _clickhouse_records(item: ShardOutput
                        ) -> list[ExecutionResult | CashResult | PnlSnapshot | RiskAlert]:
    if isinstance(item, ExecutionResult):
        return list(item.output.alerts) if is_redelivery(item) else [item, *item.output.alerts]
    if isinstance(item, CashResult):
        # A redelivered movement is not written again (its first verdict stays).
        redelivered = item.outcome.reason == "movement_id already applied"
        return list(item.output.alerts) if redelivered else [item, *item.output.alerts]
    if isinstance(item, PnlSnapshot):
        return [item]
    return list(item.output.alerts)


def build_flow(
    settings: Settings,
    *,
    source: Source[Any] | None = None,
    sinks: TradingSinks | None = None,
    limits: Callable[[], TradingConfig] | None = None,
    shard_config: ShardConfig = DEFAULT_SHARD_CONFIG,
    partitions: Sequence[int] | None = None,
    tail: bool = True,
    codec: Codec | None = None,
    limits_refresh_s: float = 30.0,
    tick: timedelta = timedelta(seconds=5),
    timeout_s: float = 10.0,
) -> Dataflow:
    """The trading dataflow for `settings`.

    Defaults: the Kafka topics (`tail=False` for a batch run to the current end), the stores
    and topics of `settings`, limits from Postgres refreshed every `limits_refresh_s`, and
    the executions partitions from the broker's metadata; the services are checked first
    (`check_services`). A test passing `source`, `sinks`, `limits` (a callable returning the
    current `TradingConfig`) and `partitions` touches no service.
    """
    uses_services = source is None or sinks is None or limits is None or partitions is None
    if uses_services:
        report = check_services(settings, timeout_s)
        partitions = partitions if partitions is not None else range(
            report.executions_partitions)
    assert partitions is not None
    codec = codec or codec_for(settings)
    source = source or kafka_source(settings, tail=tail)
    sinks = sinks or default_sinks(settings, codec)
    if limits is None:
        limits = refreshing_limits(settings, limits_refresh_s)
    flow = Dataflow(FLOW_ID)
    add_trading(flow, settings, source=source, sinks=sinks, limits=limits,
                partitions=partitions, codec=codec, shard_config=shard_config, tick=tick)
    return flow


def add_trading(
    flow: Dataflow,
    settings: Settings,
    *,
    source: Source[Any],
    sinks: TradingSinks,
    limits: Callable[[], TradingConfig],
    partitions: Sequence[int],
    codec: Codec,
    marks: op.KeyedStream[MarkTrade] | None = None,
    shard_config: ShardConfig = DEFAULT_SHARD_CONFIG,
    tick: timedelta = timedelta(seconds=5),
    prefix: str = "",
) -> None:
    """Add the trading steps to `flow` (step ids under `prefix`).

    `marks`: `tapeflow.core.market.symbol_step.MarkTrade`s from a market part of the same
    dataflow (then `source` should read the executions only); each is broadcast to every
    shard key, as the decoder does for md.marks records.
    """
    keys = [shard_key(p) for p in partitions]
    decoder = TradingDecoder(codec, settings.topic(TOPIC_EXECUTIONS),
                             settings.topic(TOPIC_MARKS), keys, settings.topic(TOPIC_CASH))

    inp = op.input(f"{prefix}trading_in", flow, source)
    decoded = decode_or_dead_letter(f"{prefix}decode", inp, decoder, "trading")
    events = decoded.oks
    if marks is not None:
        broadcast = op.flat_map(f"{prefix}broadcast_marks", marks,
                                lambda kv: broadcast_mark(kv[1].trade, keys))
        events = op.merge(f"{prefix}events", events, broadcast)

    config = limits
    outputs = op.stateful(
        f"{prefix}trading", events,
        lambda resume: ShardLogic(config, shard_config, tick, resume))
    write_outputs(prefix, outputs, sinks, decoded.errs)


def write_outputs(prefix: str, outputs: op.KeyedStream[ShardOutput | KeyedLetter],
                  sinks: TradingSinks, dead: Stream[KeyedLetter] | None = None) -> None:
    """Route a stateful step's outputs to the sinks (step ids under `prefix`)."""
    results = split_dead_letters(f"{prefix}process_errors", outputs)
    letters = [results.errs] if dead is None else [dead, results.errs]
    write_dead_letters(f"{prefix}dlq", sinks.dlq, *letters)
    to_postgres = op.filter(f"{prefix}postgres_records", results.oks,
                            lambda kv: isinstance(kv[1], ExecutionResult | CashResult
                                                  | StateChange))
    op.output(f"{prefix}postgres_out", to_postgres, sinks.postgres)
    to_clickhouse = op.flat_map_value(f"{prefix}clickhouse_records", results.oks,
                                      _clickhouse_records)
    op.output(f"{prefix}clickhouse_out", to_clickhouse, sinks.clickhouse)
    alerts = op.flat_map_value(f"{prefix}alerts", results.oks, _alerts_of)
    op.output(f"{prefix}alerts_out", alerts, sinks.alerts)


def refreshing_limits(settings: Settings, every_s: float = 30.0) -> Callable[[], TradingConfig]:
    """The current risk limits and sessions from Postgres, reloaded every `every_s`."""
    loader = postgres_loader(postgres_dsn(settings), settings.postgres.schema)
    return RefreshingConfig(loader, every_s=every_s).current


class TradingFlow:
    """`tapeflow run trading`."""

    name = "trading"
    summary = ("oms.executions + oms.cash + md.marks -> orders, positions, cash, P&L "
               "(Postgres, ClickHouse), risk.alerts")

    def build(self, settings: Settings, request: FlowRequest) -> Dataflow:
        check_kafka_access(settings, "trading", request.group)
        source = kafka_source(settings, tail=not request.batch, shard=request.shard,
                              group=request.group)
        return build_flow(settings, source=source, shard_config=settings.trading.core_config(),
                          limits_refresh_s=settings.trading.limits_refresh_s,
                          tick=timedelta(seconds=settings.trading.timer_s),
                          timeout_s=settings.runtime.service_timeout_s)


SPEC = TradingFlow()


def get_flow() -> Dataflow:
    """The flow from `Settings()` (environment and defaults): `flows.trading:get_flow()`."""
    return build_flow(Settings())


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run flows.trading:flow`: built on first access, not at import.
    if name == "flow":
        return get_flow()
    raise AttributeError(name)
