"""The trading integration tests' synthetic order flow: a seeded market of executions (with the
generator's duplicates and garbage) and marks throttled from its clean trades, produced to the
real broker (`produce_order_flow`), plus a fill for an order the OMS never acknowledged
(`unknown_fill`); the risk limits that keep only the rules the reports alone decide
(`LIMITS_SQL`) and the shard configuration the flow runs with (`SHARD`). Used by
test_trading_flow.py and test_reconcile.py; `LIMITS_SQL` by the fault tests too."""

from __future__ import annotations

from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_MARKS
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side, Trade
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.settings import Settings

SPEC = MarketSpec(seed=11, n_symbols=4, n_accounts=3, duration_s=45.0, order_rate=5.0,
                  fault_rate=0.03)
MARK_EVERY_US = 1_000_000
SHARD = ShardConfig(snapshot_interval_us=10_000_000)

LIMITS_SQL = """
UPDATE risk_limits SET max_order_qty = 1000, max_position_qty = 2000,
    max_order_notional = NULL, price_collar_bps = NULL, max_leverage = NULL,
    max_daily_loss = NULL, max_drawdown_bps = NULL, max_concentration_bps = NULL,
    max_gross_exposure = NULL, max_turnover_notional = NULL, max_mark_age_us = NULL
WHERE account_id = '*'
"""
"""Only the rules the reports alone decide: the mark-driven rules depend on how marks
interleave with reports, which differs between runs (and between a live and a batch run)."""


def unknown_fill(template: ExecutionReport) -> ExecutionReport:
    """A fill for an order the OMS never acknowledged: invalid, alerted, not applied."""
    return template._replace(
        exec_id="NOPE-1", order_id="NOPE", client_order_id=None, side=Side.BUY,
        order_type=OrderType.MARKET, exec_type=ExecType.FILL, ord_status=OrdStatus.FILLED,
        order_qty=10 * ONE, limit_price=None, stop_price=None, last_qty=10 * ONE,
        last_px=template.limit_price or 100 * ONE, cum_qty=10 * ONE, leaves_qty=0,
        avg_px=template.limit_price or 100 * ONE, commission=0, reject_reason=None)


def produce_order_flow(settings: Settings,
                       codec: Codec) -> tuple[list[ExecutionReport], list[Trade], int]:
    """Executions (with the generator's duplicates and garbage) and throttled marks from the
    clean trades, in arrival order. Returns the reports, the marks and the garbage count."""
    market = generate_market(SPEC)
    writer = KafkaWriter(settings.kafka_config())
    reports: list[ExecutionReport] = []
    marks: list[Trade] = []
    last_mark: dict[str, int] = {}
    garbage = 0
    labels = market.labels
    for pos, (topic, key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, Garbage):
                writer.send(settings.topic(topic), record.frame(codec.encode), key=key)
                garbage += 1
            else:
                writer.send(settings.topic(topic), codec.encode(record), key=key)
                reports.append(record)
        elif (isinstance(record, Trade) and labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            writer.send(settings.topic(TOPIC_MARKS), codec.encode(record), key=record.symbol)
            marks.append(record)
    bad = unknown_fill(reports[0])
    writer.send(settings.topic(TOPIC_EXECUTIONS), codec.encode(bad), key=bad.account_id)
    reports.append(bad)
    writer.flush()
    return reports, marks, garbage
