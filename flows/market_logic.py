"""Bytewax adapters of the market flow: decoding batches of ticks and the per-partition logic.

Every function here is called by Bytewax on user data and must never raise (an escaping
exception kills the whole dataflow): failures become dead letters or log lines. The one
exception is a schema registry that cannot be asked (`flows.operators`): the flow stops.

The state is keyed by partition, not by symbol (docs/flows.md, "Batches and partitions"): md.trades
and md.quotes are co-partitioned by symbol, so partition p of both topics carries the same
symbols and one stateful step per partition holds every symbol's `SymbolState`, the Kafka
Streams task model. Each batch (one poll of one partition) is split into its symbols' ticks
(`sources.kafka.ticks.symbol_arrivals`) and each symbol's ticks go through the per-symbol
core (`tapeflow.core.market.symbol_step.on_arrivals_inplace`, the form the backfill calls too)
in arrival order, exactly as per-symbol keys did.
"""

from __future__ import annotations

import heapq
import logging
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from bytewax.operators import StatefulBatchLogic

from flows.metrics import DEAD_LETTERS, MARKET_STATES
from flows.operators import KeyedLetter, batch_letter, log_kafka_error
from schemas.batch_decode import MIN_BLOCK
from schemas.codec import Codec
from sources.kafka.flow_source import MessageBatch
from sources.kafka.ticks import TickBatch, decode_ticks, symbol_arrivals
from tapeflow.core.market.candles import Candle
from tapeflow.core.market.rejections import Rejection, SequenceGap
from tapeflow.core.market.symbol_step import (
    Arrival,
    ArrivalError,
    MarketConfig,
    MarkTrade,
    Output,
    SymbolState,
    on_arrivals_inplace,
    on_end_inplace,
    on_wall_clock_inplace,
)
from tapeflow.core.models import DeadLetter, Quote, Trade
from tapeflow.errors import StoreError

log = logging.getLogger("tapeflow.flows.market")


class TickBatchDecoder:
    """A `MessageBatch` of md.trades or md.quotes -> (its decoded `TickBatch` or None when no
    tick decoded, the dead letters of the frames that did not). Consumer errors in the batch
    are logged. `record_of_topic` maps full topic names to the record each carries."""

    def __init__(self, codec: Codec, record_of_topic: dict[str, str],
                 min_block: int = MIN_BLOCK) -> None:
        self._codec = codec
        self._record_of_topic = record_of_topic
        self._min_block = min_block
        self.ticks_in = {"Trade": 0, "Quote": 0}
        """Ticks decoded, by record; a plain count read by the metrics collector at scrape time."""
        MARKET_STATES.track_decoder(self)

    def __call__(self, batch: MessageBatch) -> tuple[TickBatch | None, list[KeyedLetter]]:
        for error in batch.errors:
            log_kafka_error(error)
        expect = self._record_of_topic.get(batch.topic)
        if expect is None:
            failures = [(i, "unknown_topic", f"the market flow does not read {batch.topic!r}")
                        for i in range(len(batch))]
            return None, self._letters(batch, failures)
        try:
            ticks, errors = decode_ticks(self._codec, batch, expect, min_block=self._min_block)
        except StoreError:  # the schema registry cannot be asked: the flow stops (operators)
            raise
        except Exception as exc:  # the decoder promises DecodeErrors as data; be safe anyway
            log.exception("batch decoding failed on %s[%d]", batch.topic, batch.partition)
            detail = f"{type(exc).__name__}: {exc}"
            return None, self._letters(batch, [(i, "decode_error", detail)
                                               for i in range(len(batch))])
        self.ticks_in[expect] += len(ticks)
        letters = self._letters(batch, [(i, e.reason, e.detail) for i, e in errors])
        return (ticks if len(ticks) else None), letters

    @staticmethod
    def _letters(batch: MessageBatch, failures: list[tuple[int, str, str]]
                 ) -> list[KeyedLetter]:
        for _, reason, _ in failures:
            DEAD_LETTERS.labels("market", reason).inc()
        return [batch_letter(batch, i, reason, detail) for i, reason, detail in failures]


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


class PartitionOut(NamedTuple):
    """What one call of the partition logic emits, by destination."""

    records: list[Trade | Quote | Rejection | Candle]
    """Clean ticks, rejections and candles: the ClickHouse tables."""
    marks: list[MarkTrade]
    gaps: list[SequenceGap]
    letters: list[KeyedLetter]
    """Exceptions of the core, as dead letters."""

    @staticmethod
    def empty() -> PartitionOut:
        return PartitionOut([], [], [], [])

    def add(self, outputs: Iterable[Output]) -> None:
        records, marks, gaps = self.records, self.marks, self.gaps
        for item in outputs:
            kind = type(item)
            if kind is MarkTrade:
                marks.append(item)  # type: ignore[arg-type]
            elif kind is SequenceGap:
                gaps.append(item)  # type: ignore[arg-type]
            else:
                records.append(item)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self.records or self.marks or self.gaps or self.letters)


class PartitionSnapshot(NamedTuple):
    """A partition's recovery state: each symbol's pickled `SymbolState`."""

    symbols: dict[str, bytes]


@dataclass
class _Clock:
    """One symbol's wall-clock bookkeeping (see `PartitionLogic`)."""

    wake_us: int | None = None
    observed_from: int | None = None
    """Since when this process has watched the symbol without missing a wake-up (None: a
    resumed symbol without a tick yet)."""


def _error_letter(stage: str, exc: BaseException, arrival: Arrival | None,
                  symbol: str) -> KeyedLetter:
    topic, partition, offset = arrival.origin if arrival is not None else ("", -1, -1)
    detail = f"{type(exc).__name__}: {exc}; symbol {symbol}"
    if arrival is not None:
        detail += f"; tick {arrival.tick!r}"
    ts = arrival.recv_us if arrival is not None and arrival.recv_us is not None else 0
    return KeyedLetter(symbol, DeadLetter(topic, partition, offset, f"{stage}_error", detail,
                                          b"", ts))


@dataclass
class _Wakes:
    """Each symbol's next wake-up, soonest first (a heap; superseded entries are skipped)."""

    heap: list[tuple[int, str]] = field(default_factory=list)

    def push(self, wake_us: int, symbol: str) -> None:
        heapq.heappush(self.heap, (wake_us, symbol))


class PartitionLogic(StatefulBatchLogic[TickBatch, PartitionOut, PartitionSnapshot]):
    """One partition's symbols behind Bytewax's stateful operator: each symbol's
    `tapeflow.core.market.symbol_step` state, and its own wall-clock wake-ups.

    Each symbol is woken every `config.quiet_us` of wall time once it has seen a tick: that
    releases a quiet symbol's merge and pending mark and closes idle candle buckets (the
    docs/design.md rule: wall clock only closes idle buckets early). `notify_at` is the
    soonest wake-up of the partition's symbols. End of input flushes every symbol. An
    exception in the core is logged and becomes a dead letter with reason `<stage>_error`;
    the symbol keeps its state and carries on.

    Wall-clock quiet is judged per symbol on what *this process observed*, because the core's
    own rule (no arrival for `quiet_us`) cannot tell a quiet symbol from a process that did
    not run:
    - a symbol resumed from a snapshot carries the wall time of its last arrival in the process
      that crashed, which looks quiet at once; until it gets a tick, it counts from this
      process's first tick (`FirstTick`, shared by the step's keys) and does nothing before;
    - a wake-up that fires late (more than `quiet_us / 20`: a long sink write, a stall, CPU
      starvation) means the process was not reading: the symbol skips that wake-up and counts
      quiet time from it.
    Releasing a merge in either case would judge trades against other quotes than an
    uninterrupted run did (found by tests/integration/test_market_recovery.py).

    Snapshots: each symbol's state is pickled when it changed since the last snapshot, and the
    partition's snapshot is the set of those pickles, so a snapshot costs what changed, not
    what the partition holds.
    """

    def __init__(self, config: MarketConfig, resume: PartitionSnapshot | None,
                 wall_us: Callable[[], int] = _wall_us,
                 first_tick: FirstTick | None = None) -> None:
        self._config = config
        self._wall_us = wall_us
        self._stall_us = config.quiet_us // 20
        self._first_tick = first_tick if first_tick is not None else FirstTick()
        self._pickled: dict[str, bytes] = dict(resume.symbols) if resume is not None else {}
        self._states: dict[str, SymbolState] = {
            symbol: pickle.loads(raw) for symbol, raw in self._pickled.items()}
        self._dirty: set[str] = set()
        self._clocks: dict[str, _Clock] = {}
        self._wakes = _Wakes()
        # A resumed symbol may hold merged-but-unreleased ticks or a pending mark: wake it even
        # if no new tick arrives.
        now = wall_us()
        for symbol in self._states:
            self._clocks[symbol] = _Clock(wake_us=now + config.quiet_us)
            self._wakes.push(now + config.quiet_us, symbol)
        MARKET_STATES.track(self)

    def states(self) -> list[SymbolState]:
        """The live states, for the metrics collector (flows/metrics.py): read, never written."""
        return list(self._states.values())

    def on_batch(self, values: list[TickBatch]) -> tuple[Iterable[PartitionOut], bool]:
        wall = self._wall_us()
        self._first_tick.note(wall)
        out = PartitionOut.empty()
        for batch in values:
            try:
                runs = symbol_arrivals(batch)
            except Exception as exc:
                log.exception("ticks of %s[%d] not split by symbol", batch.topic,
                              batch.partition)
                out.letters.append(_error_letter("process", exc, None, ""))
                continue
            for symbol, arrivals in runs.items():
                self._on_ticks(symbol, arrivals, wall, out)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def _on_ticks(self, symbol: str, arrivals: list[Arrival], wall: int,
                  out: PartitionOut) -> None:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = SymbolState()
        clock = self._clocks.get(symbol)
        if clock is None:
            clock = self._clocks[symbol] = _Clock()
        clock.observed_from = wall
        self._dirty.add(symbol)
        config = self._config
        outputs: list[Output] = []
        start = 0
        while start < len(arrivals):
            try:
                state, outputs = on_arrivals_inplace(state, arrivals, wall, config,
                                                     out=outputs, start=start)
                break
            except ArrivalError as failed:  # that arrival becomes a dead letter; on with the rest
                exc = failed.__cause__ or failed
                log.error("market step failed for %s", symbol, exc_info=exc)
                out.letters.append(_error_letter("process", exc, arrivals[failed.index],
                                                 symbol))
                start = failed.index + 1
        out.add(outputs)
        self._states[symbol] = state
        if clock.wake_us is None:
            clock.wake_us = wall + config.quiet_us
            self._wakes.push(clock.wake_us, symbol)

    def on_notify(self) -> tuple[Iterable[PartitionOut], bool]:
        now = self._wall_us()
        out = PartitionOut.empty()
        heap = self._wakes.heap
        while heap and heap[0][0] <= now:
            wake, symbol = heapq.heappop(heap)
            clock = self._clocks.get(symbol)
            if clock is None or clock.wake_us != wake:
                continue  # superseded
            clock.wake_us = now + self._config.quiet_us
            self._wakes.push(clock.wake_us, symbol)
            self._on_wake(symbol, clock, now - wake, now, out)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def _on_wake(self, symbol: str, clock: _Clock, late: int, now: int,
                 out: PartitionOut) -> None:
        quiet_us = self._config.quiet_us
        if late > self._stall_us:  # the process did not run: nothing was observed meanwhile
            if clock.observed_from is not None:
                clock.observed_from = now
            return
        since = clock.observed_from
        if since is None:  # resumed, no tick yet: count from this process's first tick
            since = self._first_tick.wall_us
            if since is None or now - since < quiet_us:
                return
        quiet = now - since >= quiet_us
        self._dirty.add(symbol)
        try:
            self._states[symbol], outputs = on_wall_clock_inplace(
                self._states[symbol], now, self._config, quiet=quiet)
        except Exception as exc:
            log.exception("wall-clock step failed for %s", symbol)
            out.letters.append(_error_letter("idle", exc, None, symbol))
            return
        out.add(outputs)

    def on_eof(self) -> tuple[Iterable[PartitionOut], bool]:
        out = PartitionOut.empty()
        for symbol in list(self._states):
            self._dirty.add(symbol)
            try:
                self._states[symbol], outputs = on_end_inplace(self._states[symbol],
                                                               self._config)
            except Exception as exc:
                log.exception("end-of-input step failed for %s", symbol)
                out.letters.append(_error_letter("eof", exc, None, symbol))
                continue
            out.add(outputs)
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        heap = self._wakes.heap
        while heap:
            wake, symbol = heap[0]
            clock = self._clocks.get(symbol)
            if clock is not None and clock.wake_us == wake:
                return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=wake)
            heapq.heappop(heap)  # superseded
        return None

    def snapshot(self) -> PartitionSnapshot:
        # The core advances states in place: hand Bytewax independent copies (pickles).
        for symbol in self._dirty:
            self._pickled[symbol] = pickle.dumps(self._states[symbol], pickle.HIGHEST_PROTOCOL)
        self._dirty.clear()
        return PartitionSnapshot(dict(self._pickled))


def partition_key(batch: TickBatch) -> str:
    """The state key of a batch: its partition (md.trades p and md.quotes p share it)."""
    return str(batch.partition)

