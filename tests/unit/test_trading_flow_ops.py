"""The trading flow on Bytewax's testing source and sinks: no services, only the composition,
the mark broadcast and the error handling (nothing a record or the core does may raise out of
user code)."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError

from flows.trading import TradingSinks, build_flow
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sinks.clickhouse.trading_rows import to_row
from tapeflow.core.models import DeadLetter, RiskAlert, Trade
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import ExecutionResult, PnlSnapshot, StateChange
from tapeflow.settings import Settings
from tests.support.trading_builders import OrderSim, u

SETTINGS = Settings(kafka_topic_prefix="x.")
EXEC, MARKS = "x.oms.executions", "x.md.marks"


def _msg(topic: str, partition: int, offset: int, value: bytes) -> KafkaSourceMessage[Any, Any]:
    return KafkaSourceMessage(b"k", value, topic=topic, partition=partition, offset=offset,
                              timestamp=(1, 1_800_000_000_000))


def _run(messages: list[Any], limits: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [] for k in ("postgres", "clickhouse", "alerts", "dlq")}
    sinks = TradingSinks(**{k: TestingSink(v) for k, v in out.items()})
    flow = build_flow(SETTINGS, source=TestingSource(messages), sinks=sinks, limits=limits,
                      partitions=[0, 1], codec=Codec(LocalCatalogue.load()))
    run_main(flow)
    got = {k: [value for _key, value in v] for k, v in out.items()}
    got["dlq"] = [keyed.letter for keyed in got["dlq"]]  # (original key, letter) pairs
    return got


def test_reports_marks_and_bad_input_are_routed() -> None:
    codec = Codec(LocalCatalogue.load())
    a = OrderSim("a", qty=u(200_000))  # fat finger: an alert
    b = OrderSim("b", qty=u(10), account_id="ACC2")
    reports = [(0, a.new()), (0, a.fill(u(10), u(100))), (1, b.new()), (1, b.fill(u(10), u(50))),
               (1, OrderSim("ghost", qty=u(1), account_id="ACC2").fill(u(1), u(1)))]
    messages: list[Any] = [_msg(EXEC, p, i, codec.encode(r)) for i, (p, r) in enumerate(reports)]
    mark = Trade("XYZ", "XNAS", b.ts + 1, 1, u(101), u(1))
    messages += [
        _msg(MARKS, 0, 0, codec.encode(mark)),
        _msg(EXEC, 0, 9, b"{not avro}"),
        _msg("x.other", 0, 0, codec.encode(mark)),
        KafkaError(ConfluentKafkaError(ConfluentKafkaError._TRANSPORT),
                   KafkaSourceMessage(None, None, topic=EXEC, partition=0)),
    ]
    out = _run(messages, TradingConfig)

    results = [x for x in out["postgres"] if isinstance(x, ExecutionResult)]
    assert [r.report for r in results] == [r for _, r in reports]
    # The mark reached both shards: both holders of XYZ were revalued.
    changes = [x for x in out["postgres"] if isinstance(x, StateChange)]
    assert sorted(c.output.account.account_id for c in changes if c.output.account) == [
        "ACC", "ACC2"]
    rules = sorted(a.rule for a in out["alerts"])
    assert "order_size" in rules and "invalid_execution" in rules
    assert all(isinstance(x, RiskAlert) for x in out["alerts"])
    ch_alerts = [x for x in out["clickhouse"] if isinstance(x, RiskAlert)]
    assert sorted(ch_alerts) == sorted(out["alerts"])
    assert any(isinstance(x, PnlSnapshot) for x in out["clickhouse"])
    for record in out["clickhouse"]:
        to_row(record)  # every record has a table
    assert sorted(d.reason for d in out["dlq"]) == ["bad_magic", "unknown_topic"]


def test_an_exception_in_the_core_is_a_dead_letter_not_a_crash() -> None:
    codec = Codec(LocalCatalogue.load())
    a = OrderSim("a", qty=u(10))

    def broken() -> TradingConfig:
        raise RuntimeError("limits store on fire")

    raw = codec.encode(a.new())
    out = _run([_msg(EXEC, 0, 0, raw)], broken)
    (letter,) = out["dlq"]
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "process_error" and letter.raw == raw
    assert (letter.topic, letter.partition, letter.offset) == (EXEC, 0, 0)
    assert "limits store on fire" in letter.detail
    assert out["postgres"] == []


def test_feed_gaps_become_alerts_on_every_alert_sink() -> None:
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow

    from flows.gap_alerts import add_gap_alerts
    from tapeflow.core.market.rejections import SequenceGap, TickKind

    gaps = [
        ("XYZ", SequenceGap(TickKind.TRADE, "XNAS", "XYZ", 5, 8, 3, 1_000)),
        ("XYZ", SequenceGap(TickKind.TRADE, "XNAS", "XYZ", 9, 300, 291, 2_000)),  # escalates
        ("ABC", SequenceGap(TickKind.QUOTE, "BATS", "ABC", 1, 2, 1, 3_000)),
        # 61 s of event time without a gap on XNAS/XYZ: the next gap first clears it.
        ("XYZ", SequenceGap(TickKind.TRADE, "XNAS", "XYZ", 400, 401, 1, 63_000_000)),
    ]
    out: dict[str, list[Any]] = {k: [] for k in ("postgres", "clickhouse", "alerts", "dlq")}
    sinks = TradingSinks(**{k: TestingSink(v) for k, v in out.items()})
    flow = Dataflow("gaps")
    stream = op.input("in", flow, TestingSource(gaps))
    add_gap_alerts(stream, TradingConfig, sinks)  # type: ignore[arg-type]
    run_main(flow)
    alerts = [a for _, a in out["alerts"]]
    assert [(a.rule, a.symbol, a.severity.value) for a in alerts] == [
        ("feed_gap", "XYZ", "WARNING"), ("feed_gap", "XYZ", "CRITICAL"),
        ("feed_gap", "ABC", "WARNING"), ("feed_gap", "XYZ", "INFO"),
        ("feed_gap", "XYZ", "WARNING")]
    assert all(a.account_id is None for a in alerts)
    assert sorted(a for _, a in out["clickhouse"]) == sorted(alerts)
    assert [a for _, c in out["postgres"] for a in c.output.alerts] == alerts
    assert out["dlq"] == []
