"""Bytewax adapters of the market flow: decoding ticks and the per-symbol logic.

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

from flows.metrics import MARKET_STATES
from flows.operators import KeyedLetter, kafka_ts_us, origin_of
from schemas.codec import Codec, DecodeError
from tapeflow.core.market.symbol_step import (
    Arrival,
    MarketConfig,
    Output,
    SymbolState,
    on_arrival_inplace,
    on_end_inplace,
    on_wall_clock_inplace,
)
from tapeflow.core.models import DeadLetter

log = logging.getLogger("tapeflow.flows.market")


class TickDecoder:
    """A Kafka message of md.trades or md.quotes -> [(symbol, Arrival)]; raises `DecodeError`
    for anything else (`flows.operators.decode_or_dead_letter` makes it a dead letter).

    `record_of_topic` maps full topic names to the record each carries ("Trade", "Quote").
    """

    def __init__(self, codec: Codec, record_of_topic: dict[str, str]) -> None:
        self._codec = codec
        self._record_of_topic = record_of_topic
        self.ticks_in = {"Trade": 0, "Quote": 0}
        """Ticks decoded, by record; a plain count read by the metrics collector at scrape time."""
        MARKET_STATES.track_decoder(self)

    def __call__(self, msg: Any) -> list[tuple[str, Arrival]]:
        origin = origin_of(msg)
        expect = self._record_of_topic.get(origin[0])
        if expect is None:
            raise DecodeError("unknown_topic", f"the market flow does not read {origin[0]!r}")
        raw = msg.value if isinstance(msg.value, bytes) else b""
        tick = self._codec.decode(raw, expect=expect)
        self.ticks_in[expect] += 1
        return [(tick.symbol, Arrival(tick, kafka_ts_us(msg), origin))]


def _wall_us() -> int:
    return time.time_ns() // 1000


class FirstTick:
    """Wall time at which one dataflow's market step, in this process, got its first tick.
    Shared by all keys of the step (`build_flow` makes one per flow)."""

    def __init__(self) -> None:
        self.wall_us: int | None = None

    def note(self, wall_us: int) -> None:
        if self.wall_us is None:
            self.wall_us = wall_us


def _error_letter(stage: str, exc: BaseException, arrival: Arrival | None,
                  symbol: str) -> KeyedLetter:
    topic, partition, offset = arrival.origin if arrival is not None else ("", -1, -1)
    detail = f"{type(exc).__name__}: {exc}; symbol {symbol}"
    if arrival is not None:
        detail += f"; tick {arrival.tick!r}"
    ts = arrival.recv_us if arrival is not None and arrival.recv_us is not None else 0
    return KeyedLetter(symbol, DeadLetter(topic, partition, offset, f"{stage}_error", detail,
                                          b"", ts))


class SymbolLogic(StatefulLogic[Arrival, Output | KeyedLetter, SymbolState]):
    """One symbol's `tapeflow.core.market.symbol_step` state behind Bytewax's stateful operator.

    `notify_at` wakes the key every `config.quiet_us` of wall time once it has seen a tick:
    that releases a quiet symbol's merge and pending mark and closes idle candle buckets
    (the docs/design.md rule: wall clock only closes idle buckets early). End of input flushes.
    An exception in the core is logged and becomes a dead letter with reason
    `<stage>_error`; the key keeps its state and carries on.

    Wall-clock quiet is judged on what *this process observed*, because the core's own rule
    (no arrival for `quiet_us`) cannot tell a quiet symbol from a process that did not run:
    - a key resumed from a snapshot carries the wall time of its last arrival in the process
      that crashed, which looks quiet at once; until it gets a tick, it counts from this
      process's first tick (`FirstTick`, shared by the step's keys) and does nothing before;
    - a notification that fires late (more than `quiet_us / 20`: a long sink write, a stall,
      CPU starvation) means the process was not reading: the key skips that wake-up and counts
      quiet time from it.
    Releasing a merge in either case would judge trades against other quotes than an
    uninterrupted run did (found by tests/integration/test_market_recovery.py).
    """

    def __init__(self, config: MarketConfig, resume: SymbolState | None,
                 wall_us: Callable[[], int] = _wall_us,
                 first_tick: FirstTick | None = None) -> None:
        self._symbol = "?"  # Bytewax does not pass the key to the builder; set from the ticks
        self._config = config
        self._state = resume if resume is not None else SymbolState()
        self._wall_us = wall_us
        self._stall_us = config.quiet_us // 20
        self._first_tick = first_tick if first_tick is not None else FirstTick()
        self._observed_from: int | None = None
        """Since when this process has watched the key without missing a wake-up (None: a
        resumed key without a tick yet)."""
        # A resumed key may hold merged-but-unreleased ticks or a pending mark: wake it even if
        # no new tick arrives.
        self._wake_us: int | None = None if resume is None else self._wall_us() + config.quiet_us
        MARKET_STATES.track(self)

    def state(self) -> SymbolState:
        """The live state, for the metrics collector (flows/metrics.py): read, never written."""
        return self._state

    def on_item(self, value: Arrival) -> tuple[Iterable[Output | KeyedLetter], bool]:
        self._symbol = value.tick.symbol
        wall_us = self._wall_us()
        self._first_tick.note(wall_us)
        self._observed_from = wall_us
        try:
            self._state, out = on_arrival_inplace(self._state, value, wall_us, self._config)
        except Exception as exc:
            log.exception("market step failed for %s", self._symbol)
            return [_error_letter("process", exc, value, self._symbol)], StatefulLogic.RETAIN
        if self._wake_us is None:
            self._wake_us = wall_us + self._config.quiet_us
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output | KeyedLetter], bool]:
        now = self._wall_us()
        late = now - self._wake_us if self._wake_us is not None else 0
        self._wake_us = now + self._config.quiet_us
        if late > self._stall_us:  # the process did not run: nothing was observed meanwhile
            if self._observed_from is not None:
                self._observed_from = now
            return [], StatefulLogic.RETAIN
        since = self._observed_from
        if since is None:  # resumed, no tick yet: count from this process's first tick
            since = self._first_tick.wall_us
            if since is None or now - since < self._config.quiet_us:
                return [], StatefulLogic.RETAIN
        quiet = now - since >= self._config.quiet_us
        try:
            self._state, out = on_wall_clock_inplace(self._state, now, self._config, quiet=quiet)
        except Exception as exc:
            log.exception("wall-clock step failed for %s", self._symbol)
            return [_error_letter("idle", exc, None, self._symbol)], StatefulLogic.RETAIN
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output | KeyedLetter], bool]:
        try:
            self._state, out = on_end_inplace(self._state, self._config)
        except Exception as exc:
            log.exception("end-of-input step failed for %s", self._symbol)
            return [_error_letter("eof", exc, None, self._symbol)], StatefulLogic.RETAIN
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self._wake_us is None:
            return None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self._wake_us)

    def snapshot(self) -> SymbolState:
        # The core advances its state in place: hand Bytewax an independent copy.
        copy: SymbolState = pickle.loads(pickle.dumps(self._state, pickle.HIGHEST_PROTOCOL))
        return copy
