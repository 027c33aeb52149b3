"""Bytewax adapters of the market flow: decoding Kafka messages and the per-symbol logic.

Every function here is called by Bytewax on user data and must never raise (an escaping
exception kills the whole dataflow): failures become dead letters or log lines.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from schemas.codec import Codec, DecodeError
from tapeflow.market_step import (
    Arrival,
    MarketConfig,
    Output,
    SymbolMarket,
    on_arrival,
    on_end,
    on_wall_clock,
)
from tapeflow.models import DeadLetter

log = logging.getLogger("tapeflow.flows.market")

_NO_TIMESTAMP = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE


def kafka_ts_us(msg: Any) -> int | None:
    """The message timestamp in microseconds, None when the broker gave none."""
    ts = getattr(msg, "timestamp", None)
    if not ts or ts[0] == _NO_TIMESTAMP:
        return None
    return int(ts[1]) * 1000


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


class Decoder:
    """A Kafka message -> (symbol, Arrival), or (key, DeadLetter) for anything that does not
    decode (the dead-letter topic keeps the original key, DESIGN.md "Wire contract").

    `record_of_topic` maps full topic names to the record each carries ("Trade", "Quote").
    """

    def __init__(self, codec: Codec, record_of_topic: dict[str, str]) -> None:
        self._codec = codec
        self._record_of_topic = record_of_topic
        self.dead = 0

    def __call__(self, msg: Any) -> tuple[str, Arrival | DeadLetter]:
        """(symbol, Arrival) for a tick; (original Kafka key, DeadLetter) for anything else."""
        topic = msg.topic or ""
        partition = -1 if msg.partition is None else int(msg.partition)
        offset = -1 if msg.offset is None else int(msg.offset)
        raw = msg.value if isinstance(msg.value, bytes) else b""
        recv_us = kafka_ts_us(msg)
        try:
            expect = self._record_of_topic.get(topic)
            if expect is None:
                raise DecodeError("unknown_topic", f"the market flow does not read {topic!r}")
            tick = self._codec.decode(raw, expect=expect)
            return tick.symbol, Arrival(tick, recv_us, (topic, partition, offset))
        except DecodeError as exc:
            reason, detail = exc.reason, exc.detail
        except Exception as exc:  # the codec promises DecodeError only; be safe anyway
            reason, detail = "decode_error", f"{type(exc).__name__}: {exc}"
        self.dead += 1
        key = _text(msg.key) or ""
        return key, DeadLetter(topic, partition, offset, reason, detail, raw,
                               recv_us if recv_us is not None else 0)


def kafka_error_letter(err: Any) -> None:
    """A consumer error from the Kafka source (not a record): logged, not dead-lettered."""
    try:
        msg = err.msg
        log.warning("Kafka consumer error on %s[%s] at offset %s: %s",
                    msg.topic, msg.partition, msg.offset, err.err)
    except Exception as exc:
        log.warning("Kafka consumer error: %r (%s)", err, exc)


def _wall_us() -> int:
    return time.time_ns() // 1000


def _error_letter(stage: str, exc: BaseException, arrival: Arrival | None,
                  symbol: str) -> DeadLetter:
    topic, partition, offset = arrival.origin if arrival is not None else ("", -1, -1)
    detail = f"{type(exc).__name__}: {exc}; symbol {symbol}"
    if arrival is not None:
        detail += f"; tick {arrival.tick!r}"
    ts = arrival.recv_us if arrival is not None and arrival.recv_us is not None else 0
    return DeadLetter(topic, partition, offset, f"{stage}_error", detail, b"", ts)


class SymbolLogic(StatefulLogic[Arrival, Output | DeadLetter, SymbolMarket]):
    """One symbol's `tapeflow.market_step` state behind Bytewax's stateful operator.

    `notify_at` wakes the key every `config.quiet_us` of wall time once it has seen a tick:
    that releases a quiet symbol's merge and pending mark and closes idle candle buckets
    (the DESIGN.md rule: wall clock only closes idle buckets early). End of input flushes.
    An exception in the core is logged and becomes a dead letter with reason
    `<stage>_error`; the key keeps its state and carries on.
    """

    def __init__(self, config: MarketConfig, resume: SymbolMarket | None,
                 wall_us: Callable[[], int] = _wall_us) -> None:
        self._symbol = "?"  # Bytewax does not pass the key to the builder; set from the ticks
        self._config = config
        self._state = resume if resume is not None else SymbolMarket()
        self._wall_us = wall_us
        self._period = timedelta(microseconds=config.quiet_us)
        # A resumed key may hold merged-but-unreleased ticks or a pending mark: wake it even if
        # no new tick arrives.
        self._wake: datetime | None = (
            None if resume is None else datetime.now(UTC) + self._period
        )

    def on_item(self, value: Arrival) -> tuple[Iterable[Output | DeadLetter], bool]:
        self._symbol = value.tick.symbol
        try:
            self._state, out = on_arrival(self._state, value, self._wall_us(), self._config)
        except Exception as exc:
            log.exception("market step failed for %s", self._symbol)
            return [_error_letter("process", exc, value, self._symbol)], StatefulLogic.RETAIN
        if self._wake is None:
            self._wake = datetime.now(UTC) + self._period
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output | DeadLetter], bool]:
        self._wake = datetime.now(UTC) + self._period
        try:
            self._state, out = on_wall_clock(self._state, self._wall_us(), self._config)
        except Exception as exc:
            log.exception("wall-clock step failed for %s", self._symbol)
            return [_error_letter("idle", exc, None, self._symbol)], StatefulLogic.RETAIN
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output | DeadLetter], bool]:
        try:
            self._state, out = on_end(self._state, self._config)
        except Exception as exc:
            log.exception("end-of-input step failed for %s", self._symbol)
            return [_error_letter("eof", exc, None, self._symbol)], StatefulLogic.RETAIN
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> SymbolMarket:
        # The core advances its state in place: hand Bytewax an independent copy.
        copy: SymbolMarket = pickle.loads(pickle.dumps(self._state, pickle.HIGHEST_PROTOCOL))
        return copy
