"""Bytewax adapters of the trading flow: decoding, the mark broadcast, the shard logic.

Every function here is called by Bytewax on user data and must never raise (an escaping
exception kills the whole dataflow): failures become dead letters or log lines.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from bytewax.operators import StatefulLogic

from flows import state_codec
from flows.metrics import count_trading
from flows.operators import KeyedLetter, kafka_ts_us, origin_of, text_key
from schemas.codec import Codec, DecodeError
from tapeflow.core.models import CashMovement, DeadLetter, ExecutionReport, Trade
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.orders import Invalid
from tapeflow.core.trading.positions import MarkPrice
from tapeflow.core.trading.resume import rebuild_kept_figures_inplace
from tapeflow.core.trading.shard_step import (
    ExecutionResult,
    ShardConfig,
    ShardOutput,
    ShardState,
    mark_of,
    on_cash_inplace,
    on_finish_inplace,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)

log = logging.getLogger("tapeflow.flows.trading")


class Incoming(NamedTuple):
    """A decoded report or mark and where it came from (for dead letters only)."""

    event: ExecutionReport | CashMovement | MarkPrice
    origin: tuple[str, int, int]
    """(topic, partition, offset)."""
    raw: bytes
    recv_us: int | None
    key: str = ""
    """The Kafka key it arrived under (the account of a report)."""


def shard_key(partition: int) -> str:
    """The state key of an `oms.executions` partition."""
    return str(partition)


class TradingDecoder:
    """A Kafka message -> [(shard key, Incoming)]; raises `DecodeError` when it does not
    decode (`flows.operators.decode_or_dead_letter` makes it a dead letter).

    A report goes to the shard of its partition, and so does a cash movement (oms.cash has
    the executions' partition count and key, so an account's movements share its reports'
    partition number); a mark is broadcast to every shard (`shard_keys`, one per executions
    partition), so each holds its own marks table.
    """

    def __init__(self, codec: Codec, executions_topic: str, marks_topic: str,
                 shard_keys: Sequence[str], cash_topic: str = "") -> None:
        self._codec = codec
        self._executions = executions_topic
        self._marks = marks_topic
        self._cash = cash_topic
        self._keys = tuple(shard_keys)

    def __call__(self, msg: Any) -> list[tuple[str, Incoming]]:
        origin = origin_of(msg)
        topic, partition, _offset = origin
        raw = msg.value if isinstance(msg.value, bytes) else b""
        recv_us = kafka_ts_us(msg)
        if topic == self._executions:
            report = self._codec.decode(raw, expect="ExecutionReport")
            return [(shard_key(partition),
                     Incoming(report, origin, raw, recv_us, text_key(msg.key)))]
        if topic == self._cash and self._cash:
            movement = self._codec.decode(raw, expect="CashMovement")
            return [(shard_key(partition),
                     Incoming(movement, origin, raw, recv_us, text_key(msg.key)))]
        if topic == self._marks:
            mark = mark_of(self._codec.decode(raw, expect="Trade"))
            incoming = Incoming(mark, origin, b"", recv_us, text_key(msg.key))
            return [(key, incoming) for key in self._keys]
        raise DecodeError("unknown_topic", f"the trading flow does not read {topic!r}")


def broadcast_mark(trade: Trade, shard_keys: Sequence[str]) -> list[tuple[str, Incoming]]:
    """A clean last trade handed over inside one dataflow -> one mark per shard key."""
    incoming = Incoming(mark_of(trade), ("", -1, -1), b"", None)
    return [(key, incoming) for key in shard_keys]


def _error_letter(stage: str, exc: BaseException, incoming: Incoming | None,
                  key: str) -> KeyedLetter:
    topic, partition, offset = incoming.origin if incoming is not None else ("", -1, -1)
    detail = f"{type(exc).__name__}: {exc}; shard {key}"
    if incoming is not None:
        detail += f"; event {incoming.event!r}"
    raw = incoming.raw if incoming is not None else b""
    ts = incoming.recv_us if incoming is not None and incoming.recv_us is not None else 0
    original = incoming.key if incoming is not None else ""
    return KeyedLetter(original, DeadLetter(topic, partition, offset, f"{stage}_error", detail,
                                            raw, ts))


class ShardLogic(StatefulLogic[Incoming, ShardOutput | KeyedLetter, bytes]):
    """One shard's `tapeflow.core.trading.shard_step` state behind Bytewax's stateful operator.

    `config` returns the current risk limits and sessions (refreshed elsewhere, see
    `sources.postgres.limits.RefreshingConfig`). Every `tick` of wall time after the first
    event, the time-driven rules run at the shard's event clock and provisional P&L snapshots
    are emitted; end of input emits the last snapshots. An exception in the core is logged and
    becomes a dead letter (reason `<stage>_error`, the report's raw bytes); the shard carries on.
    """

    def __init__(self, config: Callable[[], TradingConfig], shard_config: ShardConfig,
                 tick: timedelta, resume: ShardState | bytes | None) -> None:
        self._key = "?"  # Bytewax does not pass the key to the builder
        self._config = config
        self._shard_config = shard_config
        self._tick = tick
        if isinstance(resume, bytes):
            resume = pickle.loads(resume)  # our own recovery store
        # A snapshot of an earlier version lacks the kept figures: rebuilt from positions.
        self._state = (ShardState() if resume is None
                       else rebuild_kept_figures_inplace(resume))
        self._wake: datetime | None = None

    def on_item(self, value: Incoming) -> tuple[Iterable[ShardOutput | KeyedLetter], bool]:
        event = value.event
        try:
            if isinstance(event, MarkPrice):
                out = on_market_inplace(self._state, event, self._config(), self._shard_config)
            elif isinstance(event, CashMovement):
                self._key = str(value.origin[1])
                out = on_cash_inplace(self._state, event, self._config(), self._shard_config)
            else:
                self._key = str(value.origin[1])
                out = on_report_inplace(self._state, event, self._config(), self._shard_config)
                result = out[-1]
                if isinstance(result, ExecutionResult) and isinstance(result.output.outcome,
                                                                      Invalid):
                    log.warning("execution %s for order %s not applied: %s", event.exec_id,
                                event.order_id, result.output.outcome.reason)
        except Exception as exc:
            log.exception("trading step failed on shard %s", self._key)
            return [_error_letter("process", exc, value, self._key)], StatefulLogic.RETAIN
        if self._wake is None:
            self._wake = datetime.now(UTC) + self._tick
        count_trading(out)
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[ShardOutput | KeyedLetter], bool]:
        self._wake = datetime.now(UTC) + self._tick
        try:
            out = on_tick_inplace(self._state, self._state.clock_us, self._config(),
                                  self._shard_config)
        except Exception as exc:
            log.exception("timer step failed on shard %s", self._key)
            return [_error_letter("timer", exc, None, self._key)], StatefulLogic.RETAIN
        count_trading(out)
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[ShardOutput | KeyedLetter], bool]:
        try:
            out = on_finish_inplace(self._state, self._shard_config)
        except Exception as exc:
            log.exception("end-of-input step failed on shard %s", self._key)
            return [_error_letter("eof", exc, None, self._key)], StatefulLogic.RETAIN
        count_trading(out)
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> bytes:
        """The shard, pickled: the step functions update it in place, so Bytewax needs an
        independent copy, and bytes are one: Bytewax's own pickling of them is a copy of the
        buffer. One pass over the shard instead of three (dumps and loads for a copy, then
        Bytewax's dumps), with the faster pickler of `flows.state_codec`: every epoch this
        costs the worker, and the alerts waiting behind it (issue 12). A resumed builder
        accepts the bytes or an older `ShardState`."""
        return state_codec.dumps(self._state)
