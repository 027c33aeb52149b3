"""The compiled Avro reader (schemas/fast_reader.py) against fastavro, the reference.

For every record type: valid frames decode to the same record on both paths, and mutated
frames (bytes flipped, cut short, extended) either decode to the same record on both or are
refused by both with a DecodeError. The reasons agree except that the two readers may call
the same broken body "truncated" or "invalid" (fastavro's own errors are not more precise),
and that the compiled reader refuses what fastavro reads as garbage: varints over 10 bytes or
64 bits (C's shift overflow) and negative enum or union indexes (Python's negative indexing
picks the last symbol).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalogue import LocalCatalogue
from schemas.codec import RECORD_TYPES, Codec, DecodeError
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.models import DeadLetter, RiskAlert, Severity

CODEC = Codec(LocalCatalogue.load())
MARKET = generate_market(MarketSpec(seed=2, n_symbols=3, duration_s=10.0, order_rate=5.0,
                                    fault_rate=0.0))
ALERT = RiskAlert("a1", "order_size", Severity.WARNING, None, "X'; --", 1, 5, None, "é", "e1")
LETTER = DeadLetter("md.trades", 0, 7, "bad_magic", "first byte 9", b"\x09\x00", 3)
FRAMES = ([CODEC.encode(r) for r in MARKET.trades[:40]]
          + [CODEC.encode(r) for r in MARKET.quotes[:40]]
          + [CODEC.encode(r) for r in MARKET.executions[:40]]
          + [CODEC.encode(ALERT), CODEC.encode(LETTER)])
BODY_REASONS = {"truncated_body", "invalid_body"}


@contextmanager
def _fastavro_only() -> Iterator[None]:
    saved = {name: rc.fast for name, rc in CODEC._records.items()}
    for rc in CODEC._records.values():
        rc.fast = None
    try:
        yield
    finally:
        for name, rc in CODEC._records.items():
            rc.fast = saved[name]


def _outcome(frame: bytes) -> tuple[Any, ...]:
    try:
        return "ok", CODEC.decode(frame)
    except DecodeError as exc:
        return "error", exc.reason, exc.detail


def test_every_record_type_has_a_compiled_reader() -> None:
    assert all(CODEC._records[name].fast is not None for name in RECORD_TYPES)


@pytest.mark.parametrize("frame", FRAMES[::7] + FRAMES[-2:])
def test_valid_frames_decode_to_the_same_record(frame: bytes) -> None:
    fast = CODEC.decode(frame)
    with _fastavro_only():
        assert CODEC.decode(frame) == fast


def _agree(frame: bytes) -> None:
    fast = _outcome(frame)
    with _fastavro_only():
        slow = _outcome(frame)
    if fast[0] == "error" and ("varint" in fast[2] or "index -" in fast[2]):
        return  # stricter than fastavro on purpose
    if fast[0] == "error" and slow[0] == "error" and {fast[1], slow[1]} <= BODY_REASONS:
        return
    assert fast[:2] == slow[:2]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(FRAMES), st.data())
def test_mutated_frames_are_refused_or_decoded_alike(frame: bytes, data: st.DataObject) -> None:
    body = bytearray(frame)
    kind = data.draw(st.sampled_from(["flip", "cut", "extend", "splice"]))
    if kind == "flip":
        i = data.draw(st.integers(5, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    elif kind == "cut":
        body = body[: data.draw(st.integers(5, len(body) - 1))]
    elif kind == "extend":
        body += data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(5, len(body)))
        body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    _agree(bytes(body))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([f[:5] for f in FRAMES[:1] + FRAMES[40:41] + FRAMES[80:81]]),
       st.binary(max_size=80))
def test_random_bodies_are_refused_or_decoded_alike(header: bytes, body: bytes) -> None:
    _agree(header + body)
