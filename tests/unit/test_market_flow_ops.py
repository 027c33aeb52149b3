"""The market flow on Bytewax's testing source and sinks: no services, only the composition and
its error handling (nothing a record or the core does may raise out of user code).

The source items are `MessageBatch`es (one poll of a partition) and the state is keyed by
partition (`flows.market_logic.PartitionLogic`), so the harness batches the messages and
drives the partition logic with `TickBatch`es; the expectations are those of the per-symbol
flow before it."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import KafkaError as ConfluentKafkaError

from flows.market import MarketSinks, build_flow
from flows.market_logic import FirstTick, PartitionLogic, PartitionOut
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sources.kafka.ticks import TickBatch
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.market.symbol_step import MarketConfig, MarkTrade
from tapeflow.core.models import DeadLetter, Quote, Trade
from tapeflow.settings import Settings
from tests.support.message_batches import Message, batches

SETTINGS = Settings(kafka_topic_prefix="x.")


def _messages(codec: Codec) -> tuple[Any, list[Message]]:
    market = generate_market(MarketSpec(seed=3, n_symbols=3, duration_s=8.0, fault_rate=0.05))
    out: list[Message] = []
    offsets: dict[str, int] = {}
    for topic, key, rec in market.stream():
        if not topic.startswith("md."):
            continue
        value = rec.frame(codec.encode) if isinstance(rec, Garbage) else codec.encode(rec)
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        out.append(Message(SETTINGS.topic(topic), 0, offset, key.encode(), value))
    return market, out


def _flat(items: list[Any]) -> list[Any]:
    """(key, list) items of a batched sink -> the records, in order."""
    return [record for _key, batch in items for record in batch]


def test_the_flow_routes_every_output_and_survives_bad_input() -> None:
    codec = Codec(LocalCatalogue.load())
    market, messages = _messages(codec)
    error = KafkaError(ConfluentKafkaError(ConfluentKafkaError._TRANSPORT),
                       KafkaSourceMessage(None, None, topic="x.md.trades", partition=0))
    unknown = Message("x.other", 0, 0, b"k", codec.encode(market.trades[0]), 0)
    ch: list[Any] = []
    dlq: list[Any] = []
    marks: list[Any] = []
    candles: list[Any] = []
    sinks = MarketSinks(TestingSink(ch), TestingSink(dlq), TestingSink(marks),
                        TestingSink(candles))
    source = TestingSource(batches([unknown, *messages], size=40, errors=[error]))
    flow = build_flow(SETTINGS, source=source, sinks=sinks, codec=codec, min_block=1)
    run_main(flow)

    records = _flat(ch)
    keys = [kl.key for kl in _flat(dlq)]
    letters = [kl.letter for kl in _flat(dlq)]
    garbage = [g for g in market.garbage if g.topic.startswith("md.")]
    assert sorted(lt.reason for lt in letters) == sorted(
        [g.variant for g in garbage] + ["unknown_topic"])
    assert all(isinstance(lt, DeadLetter) and lt.raw for lt in letters)
    assert sorted(keys) == sorted([g.key for g in garbage] + ["k"])
    assert any(isinstance(r, Trade) for r in records)
    assert any(isinstance(r, Quote) for r in records)
    assert any(isinstance(r, Rejection) for r in records)
    assert any(isinstance(r, Candle) for r in records)
    assert marks and all(isinstance(m, MarkTrade) for m in _flat(marks))
    # md.candles carries every candle ClickHouse gets, in the same batches, and nothing else
    assert _flat(candles) == [r for r in records if isinstance(r, Candle)]
    assert [c for _k, batch in ch for c in batch if isinstance(c, Candle)] == _flat(candles)


def _batch(ticks: list[Any], offsets: list[int], recv_us: int | None = 5,
           topic: str = "x.md.trades", partition: int = 2) -> TickBatch:
    """A decoded batch of hand-made ticks (one kind), columns as the decoder gives them (a
    broken tick keeps its broken value)."""
    columns = {name: [getattr(t, name) for t in ticks] for name in type(ticks[0])._fields}
    return TickBatch(type(ticks[0]).__name__, topic, partition, columns, offsets,
                     [recv_us] * len(ticks))


def _records(out: Any) -> list[Any]:
    return [r for part in out for r in (part.records if isinstance(part, PartitionOut)
                                        else [part])]


def test_an_exception_in_the_core_becomes_a_dead_letter() -> None:
    logic = PartitionLogic(MarketConfig(merge_max_wait_us=0), None)
    broken = Trade("AAA", "XNAS", 1, 1, "not a price", ONE)  # type: ignore[arg-type]
    out, retain = logic.on_batch([_batch([broken], [7])])
    ((keyed,),) = [part.letters for part in out]
    assert keyed.key == "AAA"  # the symbol: the original Kafka key of a tick
    letter = keyed.letter
    assert isinstance(letter, DeadLetter)
    assert (letter.topic, letter.partition, letter.offset) == ("x.md.trades", 2, 7)
    assert letter.reason == "process_error"
    assert retain is False  # StatefulBatchLogic.RETAIN: the key keeps its state
    good = Trade("AAA", "XNAS", 2, 2, 100 * ONE, ONE)
    out, _ = logic.on_batch([_batch([good], [8])])
    assert good in _records(out)
    assert logic.snapshot() is not logic.snapshot()


def test_a_resumed_key_is_woken_without_new_ticks() -> None:
    """A snapshot may hold ticks the merge has not released: the resumed key must be notified."""
    config = MarketConfig(merge_max_wait_us=10**12)
    first = PartitionLogic(config, None)
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = first.on_batch([_batch([trade], [0], recv_us=None)])
    assert _records(out) == []  # held for a quote
    resumed = PartitionLogic(config, first.snapshot())
    assert resumed.notify_at() is not None
    out, _ = resumed.on_eof()
    assert trade in _records(out)


def test_a_resumed_key_is_not_released_by_the_crashed_process_wall_clock() -> None:
    """After a restart, the snapshot's last arrival is the dead process's wall time. A resumed
    symbol must not count that as quiet (its held trade would be judged without the quotes
    still to be read again); it waits until this process has received ticks for `quiet_us`.
    Each wake-up is called when it is due, as Bytewax calls it."""
    config = MarketConfig(merge_max_wait_us=10**12, quiet_us=5_000_000)
    now = [1_000_000_000]
    first = PartitionLogic(config, None, wall_us=lambda: now[0])
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = first.on_batch([_batch([trade], [0], recv_us=None)])
    assert _records(out) == []  # held for a quote
    now[0] += 60_000_000  # the restart took a minute
    started = FirstTick()
    resumed = PartitionLogic(config, first.snapshot(), wall_us=lambda: now[0],
                             first_tick=started)
    now[0] += 5_000_000
    out, _ = resumed.on_notify()
    assert _records(out) == []  # no tick in this process yet: not quiet
    now[0] += 1_000_000
    other = PartitionLogic(config, None, wall_us=lambda: now[0], first_tick=started)
    other.on_batch([_batch([Trade("BBB", "XNAS", 1_000_000, 1, 100 * ONE, ONE)], [0],
                           recv_us=None, partition=3)])
    now[0] += 4_000_000
    out, _ = resumed.on_notify()
    assert _records(out) == []  # this process has read for 4 s only
    now[0] += 5_000_000
    out, _ = resumed.on_notify()
    assert trade in _records(out)  # quiet for 9 s while the input flowed: released


def test_a_late_wake_up_is_a_stall_not_quiet() -> None:
    """A wake-up that fires late means the process did not run (a long write, CPU starvation):
    the symbol was not observed to be quiet, so its held trade stays held."""
    config = MarketConfig(merge_max_wait_us=10**12, quiet_us=5_000_000)
    now = [1_000_000_000]
    logic = PartitionLogic(config, None, wall_us=lambda: now[0])
    trade = Trade("AAA", "XNAS", 1_000_000, 1, 100 * ONE, ONE)
    out, _ = logic.on_batch([_batch([trade], [0], recv_us=None)])
    assert _records(out) == []
    now[0] += 8_000_000  # due at +5 s, fired at +8 s
    out, _ = logic.on_notify()
    assert _records(out) == []
    now[0] += 5_000_000  # on time, and nothing arrived for 5 s of observed time
    out, _ = logic.on_notify()
    assert trade in _records(out)
