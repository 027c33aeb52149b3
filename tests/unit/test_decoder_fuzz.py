"""Fuzzing the decoding path the flows use: `flows.market_logic.TickBatchDecoder` (market, one
message per batch here: tests/unit/test_batch_decode.py fuzzes whole batches) and
`flows.trading_logic.TradingDecoder` (executions and marks), over the real codec with its compiled
reader (schemas/fast_reader.py, checked against fastavro in tests/unit/test_fast_reader.py).

Frames: valid frames of every record type, then bytes flipped, cut, extended or spliced, the
schema id replaced by a random one, the magic byte changed, random bodies, empty and missing
values, all sent on a random topic (so a record type arrives on a topic that does not carry it).

What it proves, for every frame:
- no exception escapes the decoder (one would kill the dataflow);
- a frame the decoder lets through is a record of the type its topic carries, equal to what
  the codec decodes, with timestamps a store can hold, no NUL character and bounded keys;
- every other frame is a DeadLetter carrying the raw bytes, topic, partition and offset it
  came with and a reason from the codec's documented set (never the "the codec broke its
  promise" fallback `decode_error`), and the dead letter itself encodes and decodes back
  unchanged, so it can reach the dead-letter topic;
- an unmutated frame on its own topic always decodes.

The default run is 34,000 frames (2,000 chosen by hypothesis, which shrinks a failure to a
minimal case, and 32,000 from a seeded generator making the same mutations, because
hypothesis costs about 2 ms per example); `-m slow` runs 500,000 more.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.market_logic import TickBatchDecoder
from flows.operators import DecodeOrLetter, KeyedLetter
from flows.trading_logic import Incoming, TradingDecoder
from schemas.catalogue import LocalCatalogue
from schemas.codec import (
    EVENT_TIME_MAX_US,
    EVENT_TIME_MIN_US,
    MAX_ID_BYTES,
    Codec,
    DecodeError,
)
from sources.kafka.flow_source import MessageBatch
from sources.kafka.ticks import symbol_arrivals
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.market.symbol_step import Arrival
from tapeflow.core.models import (
    DeadLetter,
    ExecutionReport,
    Quote,
    RiskAlert,
    Severity,
    Trade,
)
from tapeflow.core.trading.positions import MarkPrice

T = TypeVar("T")
CODEC = Codec(LocalCatalogue.load())
MARKET = generate_market(MarketSpec(seed=11, n_symbols=3, duration_s=10.0, order_rate=5.0,
                                    fault_rate=0.0))
TRADES, QUOTES, EXECS = "p.md.trades", "p.md.quotes", "p.oms.executions"
MARKS, OTHER = "p.md.marks", "p.other"
TOPICS = [TRADES, QUOTES, EXECS, MARKS, OTHER]
_MARKET = TickBatchDecoder(CODEC, {TRADES: "Trade", QUOTES: "Quote"})
_TRADING = DecodeOrLetter(TradingDecoder(CODEC, EXECS, MARKS, ["0", "1"]), "trading")


def MARKET_DECODER(msg: Any) -> tuple[str, Any]:  # noqa: N802 - stands for the flow's step
    """What the market flow's decode step gives for one message (a batch of one, then split
    by symbol as the partition step splits it): (symbol, Arrival), or (original key,
    DeadLetter)."""
    ts = msg.timestamp
    batch = MessageBatch(msg.topic, msg.partition, [msg.key], [msg.value], [msg.offset],
                         [ts[1] * 1000 if ts and ts[0] else None])
    ticks, letters = _MARKET(batch)
    if ticks is None:
        (letter,) = letters
        return letter.key, letter.letter
    assert not letters
    ((symbol, (arrival,)),) = symbol_arrivals(ticks).items()
    return symbol, arrival


def TRADING_DECODER(msg: Any) -> list[Any]:  # noqa: N802
    """What the trading flow's decode step gives: [(shard key, Incoming), ...] or [DeadLetter]."""
    out = _TRADING(msg)
    return [out[0].letter] if isinstance(out[0], KeyedLetter) else out
CARRIES = {TRADES: "Trade", QUOTES: "Quote", EXECS: "ExecutionReport", MARKS: "Trade"}

ALERT = RiskAlert("a1", "order_size", Severity.WARNING, "ACC", "X'; DROP TABLE t; --", 1, 5,
                  None, "é\u4e2d\U0001f600", "e1")
LETTER = DeadLetter("md.trades", 0, 7, "bad_magic", "first byte 9", b"\x09\x00", 3)
FRAMES = ([CODEC.encode(r) for r in MARKET.trades[:20]]
          + [CODEC.encode(r) for r in MARKET.quotes[:20]]
          + [CODEC.encode(r) for r in MARKET.executions[:20]]
          + [CODEC.encode(ALERT), CODEC.encode(LETTER)])
KNOWN_REASONS = {
    "too_short", "bad_magic", "unknown_schema_id", "unknown_record_type", "wrong_record_type",
    "truncated_body", "invalid_body", "trailing_bytes", "invalid_value", "unknown_topic",
    "timestamp_out_of_range", "identifier_too_long", "nul_byte",
}


MUTATIONS = ("none", "flip", "flips", "cut", "extend", "splice", "schema_id", "magic", "random",
             "empty")


class _Draw:
    """The choices a mutation needs, from hypothesis (shrinkable) or a seeded `random.Random`
    (cheap: hypothesis costs about 2 ms per example here, a plain draw a microsecond)."""

    def __init__(self, data: st.DataObject | None = None, rng: random.Random | None = None):
        self._data = data
        self._rng = rng

    def int(self, lo: int, hi: int) -> int:
        if self._data is not None:
            return self._data.draw(st.integers(lo, hi))
        assert self._rng is not None
        return self._rng.randint(lo, hi)

    def pick(self, options: Sequence[T]) -> T:
        return options[self.int(0, len(options) - 1)]

    def bytes(self, lo: int, hi: int) -> bytes:
        if self._data is not None:
            return self._data.draw(st.binary(min_size=lo, max_size=hi))
        assert self._rng is not None
        return self._rng.randbytes(self._rng.randint(lo, hi))


def _mutate(frame: bytes, draw: _Draw) -> bytes | None:
    body = bytearray(frame)
    kind = draw.pick(MUTATIONS)
    if kind == "flip":
        body[draw.int(0, len(body) - 1)] = draw.int(0, 255)
    elif kind == "flips":
        for _ in range(draw.int(2, 6)):
            body[draw.int(5, len(body) - 1)] ^= 1 << draw.int(0, 7)
    elif kind == "cut":
        body = body[: draw.int(0, len(body) - 1)]
    elif kind == "extend":
        body += draw.bytes(1, 16)
    elif kind == "splice":
        i = draw.int(5, len(body))
        body[i:i] = draw.bytes(1, 8)
    elif kind == "schema_id":
        body[1:5] = draw.int(0, 2**32 - 1).to_bytes(4, "big")
    elif kind == "magic":
        body[0] = draw.int(1, 255)
    elif kind == "random":
        return draw.bytes(0, 120)
    elif kind == "empty":
        return draw.pick([None, b""])
    return bytes(body)


def _check_letter(letter: DeadLetter, topic: str, offset: int, value: bytes | None) -> None:
    assert isinstance(letter, DeadLetter)
    assert (letter.topic, letter.partition, letter.offset) == (topic, 2, offset)
    assert letter.raw == (value or b"")
    assert letter.reason in KNOWN_REASONS, (letter.reason, letter.detail)
    assert letter.detail
    assert CODEC.decode(CODEC.encode(letter), expect="DeadLetter") == letter


def _check_record(record: Any, topic: str, value: bytes) -> None:
    assert type(record).__name__ == CARRIES[topic]
    assert CODEC.decode(value) == record
    assert EVENT_TIME_MIN_US <= record.ts_event <= EVENT_TIME_MAX_US
    texts = [v for v in record if isinstance(v, str)]
    texts += [c for v in record if isinstance(v, tuple) for c in v]
    assert not any("\x00" in text for text in texts)
    assert len(record.symbol.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES


def _one_frame(draw: _Draw) -> str:
    """Check one frame on both decoders; returns the market decoder's reason, or "ok"."""
    frame = draw.pick(FRAMES)
    value = _mutate(frame, draw)
    topic = draw.pick(TOPICS)
    offset = draw.int(0, 2**40)
    msg = KafkaSourceMessage(b"key", value, topic=topic, partition=2, offset=offset,
                             timestamp=(1, 1_800_000_000_000))

    key, market_out = MARKET_DECODER(msg)
    if isinstance(market_out, Arrival):
        assert value is not None and topic in (TRADES, QUOTES)
        _check_record(market_out.tick, topic, value)
        assert key == market_out.tick.symbol
        assert market_out.origin == (topic, 2, offset)
    else:
        assert key == "key"
        _check_letter(market_out, topic, offset, value)

    trading_out = TRADING_DECODER(msg)
    if isinstance(trading_out[0], DeadLetter):
        assert len(trading_out) == 1
        _check_letter(trading_out[0], topic, offset, value)
    else:
        assert value is not None and topic in (EXECS, MARKS)
        incoming = [item for _key, item in trading_out]
        assert all(isinstance(i, Incoming) for i in incoming)
        if topic == EXECS:
            assert [k for k, _ in trading_out] == ["2"]
            assert isinstance(incoming[0].event, ExecutionReport)
            _check_record(incoming[0].event, topic, value)
        else:
            assert [k for k, _ in trading_out] == ["0", "1"]
            assert all(isinstance(i.event, MarkPrice) for i in incoming)

    if value == frame and CARRIES.get(topic) == CODEC.decode(frame).__class__.__name__:
        assert isinstance(market_out, Arrival) or topic not in (TRADES, QUOTES)
        assert not isinstance(trading_out[0], DeadLetter) or topic not in (EXECS, MARKS)
    return "ok" if isinstance(market_out, Arrival) else market_out.reason


@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_frames_with_shrinking(data: st.DataObject) -> None:
    """Hypothesis drives the choices: a failure shrinks to a minimal frame and mutation."""
    _one_frame(_Draw(data=data))


@pytest.mark.parametrize("seed", range(4))
def test_seeded_sweep_of_mutated_frames(seed: int) -> None:
    """Volume: 4 x 8,000 frames from a seeded generator, the same mutations (reproducible)."""
    draw = _Draw(rng=random.Random(seed))
    seen = Counter(_one_frame(draw) for _ in range(8_000))
    # The sweep reaches the common ways a frame fails, and valid ticks too (the rare ones,
    # a decimal over 18 digits or a timestamp out of range, have their own tests).
    rare = {"unknown_record_type", "timestamp_out_of_range", "invalid_value",
            "identifier_too_long", "nul_byte"}
    assert set(seen) >= (KNOWN_REASONS - rare) | {"ok"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 110))
def test_seeded_sweep_long_run(seed: int) -> None:
    """`-m slow`: 10 x 50,000 more frames."""
    draw = _Draw(rng=random.Random(seed))
    assert Counter(_one_frame(draw) for _ in range(50_000))["ok"] > 0


@pytest.mark.parametrize("ts", [EVENT_TIME_MIN_US - 1, EVENT_TIME_MAX_US + 1, 2**62])
def test_timestamps_no_store_can_hold_are_dead_letters(ts: int) -> None:
    trade = Trade("ABC", "XNAS", ts, 1, 100_000_000, 100_000_000)
    frame = CODEC.encode(trade)
    msg = KafkaSourceMessage(b"ABC", frame, topic=TRADES, partition=2, offset=5,
                             timestamp=(1, 1_800_000_000_000))
    key, letter = MARKET_DECODER(msg)
    assert isinstance(letter, DeadLetter) and key == "ABC"
    assert letter.reason == "timestamp_out_of_range"
    assert letter.raw == frame and str(ts) in letter.detail
    with pytest.raises(DecodeError, match="timestamp_out_of_range"):
        CODEC.decode(frame)


@pytest.mark.parametrize("ts", [EVENT_TIME_MIN_US, 0, EVENT_TIME_MAX_US])
def test_timestamps_at_the_bounds_decode(ts: int) -> None:
    trade = Trade("ABC", "XNAS", ts, 1, 100_000_000, 100_000_000)
    assert CODEC.decode(CODEC.encode(trade)) == trade


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("symbol", "S" * MAX_ID_BYTES, True),
    ("symbol", "S" * (MAX_ID_BYTES + 1), False),
    ("order_id", "\U0001f600" * (MAX_ID_BYTES // 4), True),  # 4 bytes each: exactly the limit
    ("order_id", "\U0001f600" * (MAX_ID_BYTES // 4) + "x", False),
    ("exec_id", "e" * 10_240, False),
    ("account_id", "a" * 1_000, False),
    ("client_order_id", "c" * 1_000, False),
    ("client_order_id", None, True),
])
def test_execution_report_identifiers_are_bounded(field: str, value: str | None,
                                                  ok: bool) -> None:
    """They become Postgres keys (docs/bad-input.md)."""
    report = MARKET.executions[0]._replace(**{field: value})
    frame = CODEC.encode(report)
    msg = KafkaSourceMessage(b"k", frame, topic=EXECS, partition=2, offset=1,
                             timestamp=(1, 1_800_000_000_000))
    out = TRADING_DECODER(msg)
    if ok:
        assert isinstance(out[0], tuple) and out[0][1].event == report
    else:
        assert isinstance(out[0], DeadLetter) and out[0].reason == "identifier_too_long"
        assert field in out[0].detail and out[0].raw == frame


TICK_TRADE = Trade("ABC", "XNAS", 1_790_000_000_000_000, 1, 100_000_000, 100_000_000, "t1",
                   ("I", "F"))
TICK_QUOTE = Quote("ABC", "XNAS", 1_790_000_000_000_000, 1, 99_000_000, 1, 101_000_000, 1)


@pytest.mark.parametrize(("tick", "field", "value", "outcome"), [
    (TICK_TRADE, "symbol", "S" * MAX_ID_BYTES, "ok"),
    (TICK_TRADE, "symbol", "S" * (MAX_ID_BYTES + 1), "identifier_too_long"),
    (TICK_TRADE, "symbol", "\u00e9\u4e2d\U0001f600" * 1_000, "identifier_too_long"),
    (TICK_TRADE, "venue", "V" * MAX_ID_BYTES, "ok"),
    (TICK_TRADE, "venue", "\U0001f600" * (MAX_ID_BYTES // 4) + "x", "identifier_too_long"),
    (TICK_QUOTE, "symbol", "Q" * 10_240, "identifier_too_long"),
    (TICK_QUOTE, "venue", "Q" * 10_240, "identifier_too_long"),
    (TICK_TRADE, "trade_id", "t" * 10_240, "ok"),  # only ClickHouse String columns
    (TICK_TRADE, "symbol", "A\x00B", "nul_byte"),
    (TICK_TRADE, "venue", "\x00", "nul_byte"),
    (TICK_TRADE, "trade_id", "x\x00", "nul_byte"),
    (TICK_TRADE, "conditions", ("I", "\x00"), "nul_byte"),
    (TICK_TRADE, "symbol", "A\x01B\n\t\x7f", "ok"),  # other controls are storable text
    (TICK_QUOTE, "symbol", "\x00Q", "nul_byte"),
    (TICK_QUOTE, "venue", "X\x00", "nul_byte"),
])
def test_tick_symbols_venues_and_nul_are_refused_at_decode(tick: Trade | Quote, field: str,
                                                           value: Any, outcome: str) -> None:
    """A symbol and a venue are keys (of the market tables, md.marks, positions through marks,
    alerts): bounded like an execution report's ids; a NUL is refused in every text field,
    because Postgres refuses it in any text value (issue 14, docs/bad-input.md)."""
    record = tick._replace(**{field: value})
    frame = CODEC.encode(record)
    topic = TRADES if isinstance(tick, Trade) else QUOTES
    key, out = MARKET_DECODER(KafkaSourceMessage(b"k", frame, topic=topic, partition=0,
                                                 offset=3, timestamp=(1, 1_800_000_000_000)))
    if outcome == "ok":
        assert isinstance(out, Arrival) and out.tick == record
        assert CODEC.decode(frame) == record
    else:
        assert isinstance(out, DeadLetter) and key == "k"
        assert (out.reason, out.raw, out.offset) == (outcome, frame, 3)
        assert field in out.detail
        with pytest.raises(DecodeError, match=outcome):
            CODEC.decode(frame)


@pytest.mark.parametrize("field", ["exec_id", "order_id", "client_order_id", "account_id",
                                   "symbol", "reject_reason"])
def test_a_nul_in_any_text_of_an_execution_report_is_refused(field: str) -> None:
    report = MARKET.executions[0]._replace(**{field: "R\x00"})
    frame = CODEC.encode(report)
    out = TRADING_DECODER(KafkaSourceMessage(b"k", frame, topic=EXECS, partition=1, offset=9))
    assert isinstance(out[0], DeadLetter) and out[0].reason == "nul_byte"
    assert field in out[0].detail and out[0].raw == frame


def test_a_nul_in_an_alert_is_refused_and_a_dead_letter_may_hold_one() -> None:
    with pytest.raises(DecodeError, match="nul_byte"):
        CODEC.decode(CODEC.encode(ALERT._replace(message="m\x00")))
    letter = LETTER._replace(detail="a detail with \x00", raw=b"\x00\x00")
    assert CODEC.decode(CODEC.encode(letter)) == letter
