"""The market flow on Bytewax's testing source and sinks: no services, only the composition and
its error handling (nothing a record or the core does may raise out of user code)."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError

from flows.market import MarketSinks, build_flow
from flows.market_logic import FirstTick, SymbolLogic
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.symbol_step import Arrival, MarketConfig, MarkTrade
from tapeflow.core.models import DeadLetter, Quote, Trade
from tapeflow.settings import Settings

SETTINGS = Settings(kafka_topic_prefix="x.")


def _messages(codec: Codec) -> tuple[Any, list[Any]]:
    market = generate_market(MarketSpec(seed=3, n_symbols=3, duration_s=8.0, fault_rate=0.05))
    out: list[Any] = []
    offsets: dict[str, int] = {}
    for topic, key, rec in market.stream():
        if not topic.startswith("md."):
            continue
        value = rec.frame(codec.encode) if isinstance(rec, Garbage) else codec.encode(rec)
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        out.append(KafkaSourceMessage(key.encode(), value, topic=SETTINGS.topic(topic),
                                      partition=0, offset=offset, timestamp=(1, 1_800_000_000_000)))
    return market, out


def test_the_flow_routes_every_output_and_survives_bad_input() -> None:
    codec = Codec(LocalCatalogue.load())
    market, messages = _messages(codec)
    error = KafkaError(ConfluentKafkaError(ConfluentKafkaError._TRANSPORT),
                       KafkaSourceMessage(None, None, topic="x.md.trades", partition=0))
    unknown = KafkaSourceMessage(b"k", codec.encode(market.trades[0]), topic="x.other",
                                 partition=0, offset=0, timestamp=(0, 0))
    ch: list[Any] = []
    dlq: list[Any] = []
    marks: list[Any] = []
    candles: list[Any] = []
    sinks = MarketSinks(TestingSink(ch), TestingSink(dlq), TestingSink(marks),
                        TestingSink(candles))
    flow = build_flow(SETTINGS, source=TestingSource([error, unknown, *messages]), sinks=sinks,
                      codec=codec)
    run_main(flow)

    records = [v for _k, v in ch]
    keys = [v[0] for _k, v in dlq]
    letters = [v[1] for _k, v in dlq]
    garbage = [g for g in market.garbage if g.topic.startswith("md.")]
    assert sorted(lt.reason for lt in letters) == sorted(
        [g.variant for g in garbage] + ["unknown_topic"])
    assert all(isinstance(lt, DeadLetter) and lt.raw for lt in letters)
    assert sorted(keys) == sorted([g.key for g in garbage] + ["k"])
    assert any(isinstance(r, Trade) for r in records)
    assert any(isinstance(r, Quote) for r in records)
    assert any(isinstance(r, Rejection) for r in records)
    assert any(isinstance(r, Candle) for r in records)
    assert marks and all(isinstance(m, MarkTrade) for _k, m in marks)
    # md.candles carries every candle ClickHouse gets, keyed by its symbol, and nothing else
    assert [c for _k, c in candles] == [r for r in records if isinstance(r, Candle)]
    assert all(k == c.symbol for k, c in candles)


def test_an_exception_in_the_core_becomes_a_dead_letter() -> None:
    logic = SymbolLogic(MarketConfig(merge_max_wait_us=0), None)
    broken = Trade("AAA", "XNAS", 1, 1, "not a price", ONE)  # type: ignore[arg-type]
    out, retain = logic.on_item(Arrival(broken, 5, ("x.md.trades", 2, 7)))
    (keyed,) = list(out)
    assert keyed.key == "AAA"  # the symbol: the original Kafka key of a tick
    letter = keyed.letter
    assert isinstance(letter, DeadLetter)
    assert (letter.topic, letter.partition, letter.offset) == ("x.md.trades", 2, 7)
    assert letter.reason == "process_error"
    assert retain is False  # StatefulLogic.RETAIN: the key keeps its state
    good = Trade("AAA", "XNAS", 2, 2, 100 * ONE, ONE)
    out, _ = logic.on_item(Arrival(good, 5, ("x.md.trades", 2, 8)))
    assert good in list(out)
    assert logic.snapshot() is not logic.snapshot()


def test_a_resumed_key_is_woken_without_new_ticks() -> None:
    """A snapshot may hold ticks the merge has not released: the resumed key must be notified."""
    config = MarketConfig(merge_max_wait_us=10**12)
    first = SymbolLogic(config, None)
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = first.on_item(Arrival(trade, None))
    assert list(out) == []  # held for a quote
    resumed = SymbolLogic(config, first.snapshot())
    assert resumed.notify_at() is not None
    out, _ = resumed.on_eof()
    assert trade in list(out)


def test_a_resumed_key_is_not_released_by_the_crashed_process_wall_clock() -> None:
    """After a restart, the snapshot's last arrival is the dead process's wall time. A resumed
    key must not count that as quiet (its held trade would be judged without the quotes still
    to be read again); it waits until this process has received ticks for `quiet_us`."""
    config = MarketConfig(merge_max_wait_us=10**12, quiet_us=5_000_000)
    now = [1_000_000_000]
    first = SymbolLogic(config, None, wall_us=lambda: now[0])
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = first.on_item(Arrival(trade, None))
    assert list(out) == []  # held for a quote
    now[0] += 60_000_000  # the restart took a minute
    started = FirstTick()
    resumed = SymbolLogic(config, first.snapshot(), wall_us=lambda: now[0], first_tick=started)
    out, _ = resumed.on_notify()
    assert list(out) == []  # no tick in this process yet: not quiet
    other = SymbolLogic(config, None, wall_us=lambda: now[0], first_tick=started)
    other.on_item(Arrival(Trade("BBB", "XNAS", 1_000_000, 1, 100 * ONE, ONE), None))
    now[0] += 1_000_000
    out, _ = resumed.on_notify()
    assert list(out) == []  # this process has read for 1 s only
    now[0] += 5_000_000
    out, _ = resumed.on_notify()
    assert trade in list(out)  # quiet for 5 s while the input flowed: released


def test_a_late_wake_up_is_a_stall_not_quiet() -> None:
    """A wake-up that fires late means the process did not run (a long write, CPU starvation):
    the symbol was not observed to be quiet, so its held trade stays held."""
    config = MarketConfig(merge_max_wait_us=10**12, quiet_us=5_000_000)
    now = [1_000_000_000]
    logic = SymbolLogic(config, None, wall_us=lambda: now[0])
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = logic.on_item(Arrival(trade, None))
    assert list(out) == []
    now[0] += 8_000_000  # due at +5 s, fired at +8 s
    out, _ = logic.on_notify()
    assert list(out) == []
    now[0] += 5_000_000  # on time, and nothing arrived for 5 s of observed time
    out, _ = logic.on_notify()
    assert trade in list(out)
