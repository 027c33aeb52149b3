"""Operators both flows are built from: Kafka input split from its errors, decode or dead-letter,
and the dead-letter output.

Why one copy: the market and trading flows each had their own decode step and their dead
letters drifted apart (one kept the original Kafka key on `tapeflow.dlq`, the other dropped
it). Here a dead letter is always a `KeyedLetter` (the original key, the letter), whichever
step made it, and is written under that key.

Every function Bytewax calls here must never raise (an escaping exception kills the
dataflow): a failure becomes a dead letter or a log line. The one exception is a schema
registry that cannot be asked: that is not the record's fault, so the flow stops instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeGuard, TypeVar, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.dataflow import Stream, operator
from bytewax.outputs import Sink

from flows.metrics import DEAD_LETTERS
from schemas.codec import DecodeError
from tapeflow.core.models import DeadLetter
from tapeflow.errors import StoreError

T = TypeVar("T")
X = TypeVar("X")

log = logging.getLogger("tapeflow.flows.kafka")
_NO_TIMESTAMP = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE
DLQ_ROUTE = "dlq"
"""The one routing key of the dead-letter sink's single partition."""


class KeyedLetter(NamedTuple):
    """A dead letter and the Kafka key of the record it stands for ('' when none)."""

    key: str
    letter: DeadLetter


@dataclass(frozen=True)
class DecodeOut(Generic[T]):
    """What `decode_or_dead_letter` returns: the decoded items and the dead letters."""

    oks: Stream[T]
    errs: Stream[KeyedLetter]


def kafka_ts_us(msg: Any) -> int | None:
    """The message timestamp in microseconds, None when the broker gave none."""
    ts = getattr(msg, "timestamp", None)
    if not ts or ts[0] == _NO_TIMESTAMP:
        return None
    return int(ts[1]) * 1000


def text_key(value: bytes | str | None) -> str:
    """A Kafka key as text ('' for none), for dead letters and logs."""
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def origin_of(msg: Any) -> tuple[str, int, int]:
    """(topic, partition, offset) of a Kafka message, -1 where unknown."""
    partition = -1 if msg.partition is None else int(msg.partition)
    offset = -1 if msg.offset is None else int(msg.offset)
    return msg.topic or "", partition, offset


def letter_of(msg: Any, reason: str, detail: str) -> KeyedLetter:
    """The dead letter of a message that did not decode: its raw bytes, under its key."""
    topic, partition, offset = origin_of(msg)
    raw = msg.value if isinstance(msg.value, bytes) else b""
    recv_us = kafka_ts_us(msg)
    return KeyedLetter(text_key(msg.key), DeadLetter(topic, partition, offset, reason, detail,
                                                     raw, recv_us if recv_us is not None else 0))


def log_kafka_error(err: Any) -> None:
    """A consumer error from the Kafka source (not a record): logged, not dead-lettered."""
    try:
        msg = err.msg
        log.warning("Kafka consumer error on %s[%s] at offset %s: %s",
                    msg.topic, msg.partition, msg.offset, err.err)
    except Exception as exc:
        log.warning("Kafka consumer error: %r (%s)", err, exc)


def is_kafka_error(item: object) -> TypeGuard[KafkaError[Any, Any]]:
    return isinstance(item, KafkaError)


def is_letter(item: object) -> TypeGuard[KeyedLetter]:
    return isinstance(item, KeyedLetter)


def is_keyed_letter(item: tuple[str, object]) -> TypeGuard[tuple[str, KeyedLetter]]:
    """A stateful step's (state key, value) output whose value is a dead letter."""
    return isinstance(item[1], KeyedLetter)


class DecodeOrLetter(Generic[T]):
    """Calls the flow's decode function and turns whatever it raises into a dead letter."""

    def __init__(self, decode: Callable[[Any], Iterable[T]], flow: str) -> None:
        self._decode = decode
        self._flow = flow

    def __call__(self, msg: Any) -> list[T | KeyedLetter]:
        try:
            return list(self._decode(msg))
        except DecodeError as exc:
            reason, detail = exc.reason, exc.detail
        except StoreError as exc:
            # The schema registry never answered (past the sinks' deadline) or refused us: the
            # record may be valid, so it is not a dead letter. The flow stops with one line,
            # and a restart replays from the last snapshot (docs/bad-input.md).
            topic, partition, offset = origin_of(msg)
            log.error("%s flow stops at %s[%d] offset %d (a restart with recovery replays): %s",
                      self._flow, topic, partition, offset, exc)
            raise
        except Exception as exc:  # the codec promises DecodeError only; be safe anyway
            reason, detail = "decode_error", f"{type(exc).__name__}: {exc}"
        DEAD_LETTERS.labels(self._flow, reason).inc()
        return [letter_of(msg, reason, detail)]


@operator
def decode_or_dead_letter(
    step_id: str,
    up: Stream[KafkaSourceMessage[Any, Any] | KafkaError[Any, Any]],
    decode: Callable[[Any], Iterable[T]],
    flow: str,
) -> DecodeOut[T]:
    """Kafka source items -> decoded items, or dead letters under the original key.

    `decode(msg)` returns the items one message gives (a report; a mark once per shard) and
    raises `schemas.codec.DecodeError` for a record that does not decode; consumer errors are
    logged. `flow` labels the dead-letter metric.
    """
    split = op.branch("kafka_errors", up, is_kafka_error)
    op.inspect("log_kafka_errors", split.trues, lambda _step, err: log_kafka_error(err))
    decoded = op.flat_map("decode", split.falses, DecodeOrLetter(decode, flow))
    letters = op.branch("undecodable", decoded, is_letter)
    # A guard types the branch it selects; the other side is its complement, which Python's
    # types cannot express: the one cast of the flows, here.
    return DecodeOut(cast("Stream[T]", letters.falses), letters.trues)


@dataclass(frozen=True)
class BatchDecodeOut(Generic[T]):
    """What `decode_batches_or_dead_letter` returns: the decoded batches and, per input batch,
    the dead letters of the frames that did not decode."""

    oks: Stream[T]
    errs: Stream[list[KeyedLetter]]


def batch_letter(batch: Any, i: int, reason: str, detail: str) -> KeyedLetter:
    """The dead letter of message `i` of a `sources.kafka.flow_source.MessageBatch`: its raw
    bytes, under its key."""
    raw = batch.values[i]
    recv = batch.recv_us[i]
    return KeyedLetter(text_key(batch.keys[i]), DeadLetter(
        batch.topic, batch.partition, batch.offsets[i], reason, detail,
        raw if isinstance(raw, bytes) else b"", recv if recv is not None else 0))


class BatchDecodeOrLetter(Generic[T]):
    """Calls a batch decoder; one that raises (it promises not to) makes every message of the
    batch a dead letter, "decode_error", rather than stopping the flow. A schema registry that
    cannot be asked stops the flow instead, as in `DecodeOrLetter`."""

    def __init__(self, decode: Callable[[Any], tuple[T | None, list[KeyedLetter]]],
                 flow: str) -> None:
        self._decode = decode
        self._flow = flow

    def __call__(self, batch: Any) -> tuple[T | None, list[KeyedLetter]]:
        try:
            return self._decode(batch)
        except StoreError as exc:  # not the records' fault: see DecodeOrLetter
            offset = batch.offsets[0] if batch.offsets else -1
            log.error("%s flow stops at %s[%d] offset %d (a restart with recovery replays): %s",
                      self._flow, batch.topic, batch.partition, offset, exc)
            raise
        except Exception as exc:
            log.exception("decoding a batch of %s failed", getattr(batch, "topic", "?"))
            detail = f"{type(exc).__name__}: {exc}"
            DEAD_LETTERS.labels(self._flow, "decode_error").inc(len(batch.values))
            return None, [batch_letter(batch, i, "decode_error", detail)
                          for i in range(len(batch.values))]


@operator
def decode_batches_or_dead_letter(
    step_id: str,
    up: Stream[Any],
    decode: Callable[[Any], tuple[T | None, list[KeyedLetter]]],
    flow: str,
) -> BatchDecodeOut[T]:
    """`sources.kafka.flow_source.MessageBatch`es -> decoded batches, and the dead letters of
    each batch (under their original keys) as one list.

    `decode(batch)` returns (the decoded batch, or None when nothing in it decoded, the dead
    letters of the frames that did not) and logs the batch's consumer errors. `flow` labels
    the dead-letter metric.
    """
    decoded = op.map("decode", up, BatchDecodeOrLetter(decode, flow))
    oks = op.filter_map("oks", decoded, lambda d: d[0])
    letters = op.filter_map("letters", decoded, lambda d: d[1] or None)
    return BatchDecodeOut(oks, letters)


@operator
def write_dead_letter_batches(step_id: str, sink: Sink[Any],
                              *ups: Stream[list[KeyedLetter]]) -> None:
    """Lists of dead letters to the dead-letter sink, one item per list (a batched
    `sinks.kafka.flow_sink.KafkaRecordSink`, which writes each letter under its original
    key)."""
    merged = op.merge("merge", *ups) if len(ups) > 1 else ups[0]
    routed = op.map("route", merged, lambda letters: (DLQ_ROUTE, letters))
    op.output("out", routed, sink)


@dataclass(frozen=True)
class StepOut(Generic[X]):
    """A stateful step's outputs without its dead letters, and the dead letters."""

    oks: Stream[tuple[str, X]]
    errs: Stream[KeyedLetter]


@operator
def split_dead_letters(step_id: str, up: Stream[tuple[str, X | KeyedLetter]]) -> StepOut[X]:
    """Separate the dead letters a stateful step emits (failures in the core) from its
    outputs."""
    branch = op.branch("branch", up, is_keyed_letter)
    letters = op.map("letters", branch.trues, lambda kv: kv[1])
    return StepOut(cast("Stream[tuple[str, X]]", branch.falses), letters)  # the complement


@operator
def write_dead_letters(step_id: str, sink: Sink[Any], *ups: Stream[KeyedLetter]) -> None:
    """Every dead letter to the dead-letter sink, which writes each under its original key
    (`sinks.kafka.flow_sink.KafkaRecordSink` with `key=lambda kl: kl.key or None`)."""
    merged = op.merge("merge", *ups) if len(ups) > 1 else ups[0]
    routed = op.map("route", merged, lambda kl: (DLQ_ROUTE, kl))
    op.output("out", routed, sink)
