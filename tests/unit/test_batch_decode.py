"""Batch decoding (schemas/batch_decode.py, schemas/batch_reader.py) against the reference:
decoding frame by frame with the codec.

A batch is decoded in Avro blocks by polars where it can be, one frame at a time where it
cannot, and must give exactly what `codec.decode(frame, expect)` gives for every frame: the
same records (every field, in core units) in input order, and the same `DecodeError` reason
and detail for every frame that does not decode. polars' reader is more lenient than the codec
(decimals of any width, any non-zero union index, trailing bytes, over-long varints), so the
frames below include each of those, hand-made, besides random mutations; a batch reader that
accepted one of them would give a record where the codec gives a dead letter, or shift every
later record.

Also: the block path really is taken for valid batches (the comparisons are not between two
runs of the one-by-one path), several writer schema ids in one batch (schema evolution) decode
as the codec decodes them, and the issue's acceptance case: one corrupt frame among 5,000 good
ones gives exactly one dead letter and 5,000 ticks, identical to record-by-record decoding.
"""

from __future__ import annotations

import copy
import io
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import fastavro
import pytest

from schemas import batch_decode, batch_reader
from schemas.batch_decode import decode_batch
from schemas.batch_reader import read_block
from schemas.catalogue import LocalCatalogue, RegistryCatalogue, current_schema
from schemas.codec import Codec, DecodeError
from sources.synthetic import MarketSpec, generate_market
from tapeflow.core.fixedpoint import to_decimal
from tapeflow.core.models import Quote, Trade
from tests.support.locations import REPO

CODEC = Codec(LocalCatalogue.load())
MARKET = generate_market(MarketSpec(seed=5, n_symbols=12, duration_s=40.0, fault_rate=0.02))
TRADES = [CODEC.encode(t) for t in MARKET.trades[:6000]]
QUOTES = [CODEC.encode(q) for q in MARKET.quotes[:2000]]


def _reference(frames: Sequence[bytes | None], expect: str) -> tuple[list[Any], list[Any]]:
    """Frame by frame with the codec: (records with their positions, failures)."""
    records, failures = [], []
    for i, frame in enumerate(frames):
        try:
            records.append((i, CODEC.decode(frame, expect=expect)))  # type: ignore[arg-type]
        except DecodeError as exc:
            failures.append((i, exc.reason, exc.detail))
    return records, failures


def _batched(frames: Sequence[bytes | None], expect: str, min_block: int = 1
             ) -> tuple[list[Any], list[Any]]:
    decoded = decode_batch(CODEC, frames, expect, min_block=min_block)
    kind = Trade if expect == "Trade" else Quote
    cols = [decoded.columns[name] for name in kind._fields]
    records = []
    for i, row in zip(decoded.rows, zip(*cols, strict=True), strict=True):
        values = list(row)
        if expect == "Trade":
            values[-1] = tuple(values[-1])
        records.append((i, kind(*values)))
    return records, [(i, e.reason, e.detail) for i, e in decoded.failures]


@contextmanager
def _count_blocks() -> Iterator[list[int]]:
    """Count the blocks read and how many of them passed the checks."""
    counts = [0, 0]
    real = batch_decode.read_block

    def counting(schema: dict[str, Any], bodies: Sequence[bytes]) -> Any:
        counts[0] += 1
        out = real(schema, bodies)
        counts[1] += out is not None
        return out

    batch_decode.read_block = counting  # type: ignore[assignment]
    try:
        yield counts
    finally:
        batch_decode.read_block = real


def test_valid_batches_are_read_as_blocks_and_equal_the_codec() -> None:
    for frames, expect in ((TRADES, "Trade"), (QUOTES, "Quote")):
        with _count_blocks() as counts:
            got = _batched(frames, expect)
        assert counts == [1, 1], expect  # one block, accepted: the block path was taken
        assert got == _reference(frames, expect)
        assert not got[1] and len(got[0]) == len(frames)


def test_one_corrupt_frame_among_5000_good_ones() -> None:
    """The issue's acceptance case: exactly one dead letter and 5,000 decoded ticks, identical
    to what record-by-record decoding gives."""
    good = TRADES[:5000]
    corrupt = good[2500][:-3]  # cut short: the block read fails or is refused
    frames = [*good[:2500], corrupt, *good[2500:]]
    records, failures = _batched(frames, "Trade", min_block=batch_decode.MIN_BLOCK)
    assert len(records) == 5000
    assert [(i, reason) for i, reason, _ in failures] == [(2500, "truncated_body")]
    assert (records, failures) == _reference(frames, "Trade")
    assert [r for _, r in records] == [CODEC.decode(f) for f in good]


def test_a_bad_frame_sends_only_its_neighbourhood_down_the_slow_path() -> None:
    """A failed block is split and the halves read as blocks again, so one bad frame among
    5,000 costs fewer than 2 x MIN_BLOCK frames decoded one by one, not 5,000."""
    codec = Codec(LocalCatalogue.load())
    one_by_one = []
    real = codec.decode

    def counting(frame: bytes, expect: str | None = None) -> Any:
        one_by_one.append(frame)
        return real(frame, expect)

    codec.decode = counting  # type: ignore[method-assign]
    frames = [*TRADES[:3000], TRADES[3000][:-2], *TRADES[3001:5001]]
    with _count_blocks() as counts:
        decoded = decode_batch(codec, frames, "Trade")
    assert [i for i, _ in decoded.failures] == [3000] and len(decoded) == 5000
    assert counts[1] >= 2 and len(one_by_one) < 2 * batch_decode.MIN_BLOCK


def _body(record: Any) -> bytes:
    """The Avro body of a record as the codec writes it (no header)."""
    return CODEC.encode(record)[5:]


def _frame(body: bytes, schema_id: int = 1) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _trade_body(trade: Trade, *, union: bytes | None = None, price: bytes | None = None,
                seq: bytes | None = None, symbol: bytes | None = None) -> bytes:
    """A Trade body built field by field, with any field's bytes replaced."""
    def text(s: str) -> bytes:
        raw = s.encode()
        return _varint(len(raw)) + raw

    def dec(units: int) -> bytes:
        raw = units.to_bytes((units.bit_length() + 8) // 8, "big", signed=True)
        return _varint(len(raw)) + raw

    trade_id = (b"\x00" if trade.trade_id is None else
                (union or b"\x02") + text(trade.trade_id))
    conditions = (b"\x00" if not trade.conditions else
                  _varint(len(trade.conditions)) + b"".join(map(text, trade.conditions))
                  + b"\x00")
    return b"".join([symbol if symbol is not None else text(trade.symbol), text(trade.venue),
                     _varint(trade.ts_event), seq if seq is not None else _varint(trade.seq),
                     price if price is not None else dec(trade.price), dec(trade.size),
                     trade_id, conditions])


BASE = next(t for t in MARKET.trades if t.trade_id is not None and t.price > 0)
LENIENT = {
    # polars takes any non-zero union index as the value branch; the codec refuses it
    "union_index_2": _trade_body(BASE, union=b"\x04"),
    "union_index_minus_1": _trade_body(BASE, union=b"\x01"),
    # a decimal(18, 8) beyond 18 digits: polars keeps it in 128 bits
    "price_19_digits": _trade_body(BASE, price=b"\x12" + (10**20).to_bytes(9, "big")),
    "price_38_digits": _trade_body(BASE, price=b"\x20" + (10**37).to_bytes(16, "big")),
    # bytes after the body: in a block they would shift every later record
    "trailing_zero": _body(BASE) + b"\x00",
    "trailing_bytes": _body(BASE) + b"\x06abc",
    # a non-minimal varint (the codec reads it; a block must not mis-measure it)
    "non_minimal_seq": _trade_body(BASE, seq=b"\x82\x80\x00"),
    # a 10-byte varint, valid, and an 11-byte one, not
    "seq_2_62": _trade_body(BASE._replace(seq=2**62)),
    "seq_11_bytes": _trade_body(BASE, seq=b"\xff" * 10 + b"\x01"),
    # invalid UTF-8 in a string
    "bad_utf8": _trade_body(BASE, symbol=b"\x04\xff\xfe"),
    # negative decimals the codec writes one byte wider than the minimum (-2**(8k-1))
    "minus_128_units": _body(BASE._replace(price=-128)),
    "minus_2_15_units": _body(BASE._replace(size=-(2**15))),
    "timestamp_2300": _body(BASE._replace(ts_event=10_413_792_000_000_000)),
    "empty_body": b"",
    # the codec's edge checks (schemas/edge.py), which polars knows nothing of: a NUL in any
    # text of a tick, a symbol or venue longer than 256 bytes in UTF-8
    "nul_in_symbol": _trade_body(BASE._replace(symbol="A\x00B")),
    "nul_in_venue": _trade_body(BASE._replace(venue="X\x00")),
    "nul_in_trade_id": _trade_body(BASE._replace(trade_id="t\x00")),
    "nul_in_a_condition": _trade_body(BASE._replace(conditions=("@", "F\x00"))),
    "symbol_257_bytes": _trade_body(BASE._replace(symbol="S" * 257)),
    "venue_86_euro_signs": _trade_body(BASE._replace(venue="\u20ac" * 86)),
}
EDGE = ("nul_in_symbol", "nul_in_venue", "nul_in_trade_id", "nul_in_a_condition",
        "symbol_257_bytes", "venue_86_euro_signs")


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_frames_polars_reads_more_leniently_than_the_codec(name: str) -> None:
    """Each planted frame (first, middle and last of a batch) decodes as the codec decodes it,
    and the good frames around it are unaffected."""
    planted = _frame(LENIENT[name])
    good = TRADES[:300]
    for at in (0, 150, 300):
        frames = [*good[:at], planted, *good[at:]]
        assert _batched(frames, "Trade") == _reference(frames, "Trade"), (name, at)


def test_the_block_reader_refuses_each_lenient_body_alone_or_among_good_ones() -> None:
    """Not only the end result: the block reader itself must not accept a block holding a
    frame the codec refuses or would read differently (else the equality above could come
    from a lucky fallback)."""
    schema = current_schema("Trade")
    good = [f[5:] for f in TRADES[:50]]
    # Aligned blocks whose one record fails a check of its own leave that record out alone.
    for name in ("union_index_2", "union_index_minus_1", "seq_2_62", "timestamp_2300", *EDGE):
        assert (block := read_block(schema, [*good, LENIENT[name]])) is not None, name
        assert block[1] == [len(good)], name
    for name, body in LENIENT.items():
        try:
            want = CODEC.decode(_frame(body), expect="Trade")
        except DecodeError:
            want = None
        block = read_block(schema, [*good, body])
        if block is None:
            continue  # refused whole: every frame goes one by one
        read, left_out = block
        if want is None:  # the codec refuses it: it must be left out, the others read
            assert left_out == [len(good)], name
            assert read.height == len(good), name
        else:  # read, as the codec reads it (or left out to be decoded one by one)
            assert left_out in ([], [len(good)]), name
            if not left_out:
                assert _row(read, len(good)) == want, name


def _row(block: Any, i: int) -> Trade:
    values = [block[name][i] for name in Trade._fields]
    values[-1] = tuple(values[-1])
    return Trade(*values)


MUTATIONS = ("flip", "cut", "extend", "splice", "schema_id", "magic", "random", "none", "none")


def _mutate(frame: bytes, rng: random.Random) -> bytes | None:
    body = bytearray(frame)
    kind = rng.choice(MUTATIONS)
    if kind == "flip":
        body[rng.randrange(len(body))] = rng.randrange(256)
    elif kind == "cut":
        body = body[: rng.randrange(len(body))]
    elif kind == "extend":
        body += rng.randbytes(rng.randint(1, 8))
    elif kind == "splice":
        i = rng.randint(5, len(body))
        body[i:i] = rng.randbytes(rng.randint(1, 4))
    elif kind == "schema_id":
        body[1:5] = rng.choice([2, 3, 99, 2**31]).to_bytes(4, "big")
    elif kind == "magic":
        body[0] = rng.randint(1, 255)
    elif kind == "random":
        return rng.choice([None, rng.randbytes(rng.randint(0, 60))])
    return bytes(body)


@pytest.mark.parametrize("seed", range(6))
def test_batches_with_random_mutations_equal_the_codec(seed: int) -> None:
    """Batches of 150-400 frames, a few of them mutated (or planted lenient bodies), in
    blocks where possible: every frame as the codec decodes it. About 2,000 frames a seed."""
    rng = random.Random(seed)
    for _ in range(8):
        expect = rng.choice(["Trade", "Quote"])
        pool = TRADES if expect == "Trade" else QUOTES
        start = rng.randrange(len(pool) - 400)
        frames: list[bytes | None] = list(pool[start:start + rng.randint(150, 400)])
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            i = rng.randrange(len(frames))
            if expect == "Trade" and rng.random() < 0.3:
                frames[i] = _frame(rng.choice(list(LENIENT.values())))
            else:
                frames[i] = _mutate(frames[i] or b"", rng)
        assert _batched(frames, expect) == _reference(frames, expect), seed


def _trade_v2() -> dict[str, Any]:
    schema = copy.deepcopy(current_schema("Trade"))
    at = [f["name"] for f in schema["fields"]].index("size") + 1
    schema["fields"].insert(at, {"name": "aggressor", "type": ["null", "string"],
                                 "default": None})
    return schema


def test_several_writer_ids_in_one_batch() -> None:
    """Schema evolution: frames of this version's Trade and of a newer one (an optional field
    added in the middle) interleaved in one batch decode as the codec decodes each (the newer
    ones by schema resolution), and the current ones still go through a block."""
    registry = RegistryCatalogue.from_url(f"mock://batch-{uuid.uuid4().hex[:8]}")
    v1 = registry.register_current()["md.trades-value"]
    v2_schema = _trade_v2()
    v2 = registry.register("md.trades-value", v2_schema)
    assert v2 != v1
    codec = Codec(registry)
    parsed = fastavro.parse_schema(v2_schema)
    frames: list[bytes | None] = []
    for i, trade in enumerate(MARKET.trades[:600]):
        if i % 3:
            frames.append(codec.encode(trade))
            continue
        buf = io.BytesIO()
        buf.write(b"\x00" + v2.to_bytes(4, "big"))
        fastavro.schemaless_writer(buf, parsed, {
            **trade._asdict(), "price": to_decimal(trade.price), "size": to_decimal(trade.size),
            "conditions": list(trade.conditions), "aggressor": "BUY" if i % 2 else None})
        frames.append(buf.getvalue())
    with _count_blocks() as counts:
        decoded = decode_batch(codec, frames, "Trade", min_block=1)
    assert counts == [1, 1]  # the current version's frames, as one block
    assert not decoded.failures
    cols = [decoded.columns[name] for name in Trade._fields]
    got = [Trade(*row[:-1], tuple(row[-1])) for row in zip(*cols, strict=True)]
    assert decoded.rows == list(range(600))
    assert got == [codec.decode(f, expect="Trade") for f in frames]
    assert got == MARKET.trades[:600]


def test_rust_panic_reports_are_kept_out_of_stderr_and_other_output_is_not(
        capfd: pytest.CaptureFixture[str]) -> None:
    """polars panics on some malformed blocks (caught, then the fallback); Rust prints the
    panic to stderr first. `read_block` keeps that report out of the flow's log, but what
    anything else wrote to stderr meanwhile still arrives."""
    schema = current_schema("Trade")
    truncated = _frame(LENIENT["empty_body"] + b"\x0c")[5:]  # a string longer than the block
    assert read_block(schema, [TRADES[0][5:], truncated]) is None
    assert "panicked" not in capfd.readouterr().err
    with batch_reader._panics_quieted():
        os.write(2, b"\nthread '<unnamed>' (7) panicked at src/x.rs:1:2:\nrange end index 9\n"
                    b"note: run with `RUST_BACKTRACE=1` environment variable to display a "
                    b"backtrace\nan ordinary log line\n")
    assert capfd.readouterr().err == "an ordinary log line\n"


def test_importing_the_reader_leaves_rust_backtrace_as_it_was() -> None:
    """The reader makes polars panic once with RUST_BACKTRACE=0 so its later panics skip the
    backtrace (docs/bad-input.md); the variable itself is left as the user set it."""
    code = ("import os, sys; os.environ['RUST_BACKTRACE'] = sys.argv[1]; "
            "import schemas.batch_reader; print(os.environ.get('RUST_BACKTRACE'))")
    for value in ("1", "full"):
        done = subprocess.run([sys.executable, "-c", code, value], capture_output=True,
                              text=True, check=True, cwd=REPO)
        assert done.stdout.strip() == value
        assert "panicked" not in done.stderr
