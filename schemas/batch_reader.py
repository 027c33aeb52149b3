"""Many Avro bodies of one schema decoded in one call: an in-memory object container read by
polars, with checks that make the result exactly what record-by-record decoding gives.

Why: the market flow decodes a few thousand frames per poll of a partition, and record by
record (compiled reader or fastavro) costs 6-10 µs a frame in Python, while polars' Rust Avro
reader takes a whole block in one call (measured: several million trades a second,
bench/decode_batch.py). The bodies are concatenated as one block of an object container
(magic, metadata with the writer schema, a random sync marker, then the block: count, byte
size, bodies, marker) and `polars.read_avro` reads it, decimals and timestamps as their
logical types.

Why checks: polars' reader is lenient where the codec is strict. Measured on polars 1.x/2.x:
it reads a decimal of any byte length into a 128-bit integer (a decimal(18, 8) beyond 18
digits comes back as a number), takes any non-zero union index as the value branch, and does
not check that a block's bytes are used up; on a truncated body it may raise a Rust panic
(`pyo3_runtime.PanicException`, a `BaseException`). A body with trailing bytes would shift
every later record by those bytes. So a block is accepted only when:

- every record's *minimal* encoded length, computed from the decoded values (varints, string
  and byte lengths, decimal two's complement width, union indexes, array blocks), equals the
  length of its body. Minimal lengths never exceed what a reader consumed, and the reader
  never reads past the block (it panics instead), so equality for every record proves that
  record i was read from exactly body i: no shifting, no trailing bytes, no over-long varints.
  Without it the whole block is refused (decimals beyond decimal(18, 8) too: their length
  cannot be measured in 64 bits);
- then, record by record: every union index byte (found at its computed offset) is 0x00 or
  0x02 and agrees with the null it produced; timestamps are in the 1900..2299 range of the
  codec; no varint is 10 bytes long (a 10th byte may carry bits beyond 64, which the codec
  refuses and polars would wrap); the codec's edge checks hold (`schemas.edge`: no NUL, no
  over-long identifier). A record failing one of these is left out alone.

A Rust panic is caught as an exception, but Rust prints it to stderr first (the panic hook,
which Python cannot replace): `_panics_quieted` points the process's stderr at a scratch file
for the read and copies back whatever was written there but the panic report, so a malformed
frame costs a fallback, not lines of Rust backtrace in the flow's log. With `RUST_BACKTRACE`
set, Rust also captures and symbolises a backtrace on every panic, measured at about 150 ms
inside a running dataflow (against 0.05 ms without): one malformed frame per batch would make
the flow fifty times slower. Rust reads that variable once per library, at the library's first
panic, so `_quiet_polars_backtraces` makes polars panic once at import with the variable set to
0 and restores it: polars' panics stay cheap, and Bytewax's own (another library) still show a
backtrace when asked for.

Anything else (an error, a panic, a failed check, a schema type not listed in `_length`)
returns None, and the caller decodes those frames one by one, so every bad frame becomes its
own dead letter with its own reason (`schemas.batch_decode`).

Output columns are the record's fields with the core's fixed-point representation: Int64
microseconds for timestamps and Int64 scale-8 units for decimals.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import polars as pl
import pyarrow as pa

from schemas.edge import ID_FIELDS, MAX_ID_BYTES, NUL_CHECKED, is_text, is_text_array
from tapeflow.core.fixedpoint import MAX_UNITS, SCALE
from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US

_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)


def _zigzag_long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _avro_bytes(raw: bytes) -> bytes:
    return _zigzag_long(len(raw)) + raw


def container(schema: dict[str, Any], bodies: Sequence[bytes]) -> bytes:
    """An Avro object container holding `bodies` (each one record's binary encoding under
    `schema`) as a single uncompressed block."""
    sync = os.urandom(16)
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": b"null"}
    header = b"".join([b"Obj\x01", _zigzag_long(len(meta)),
                       *(_avro_bytes(k) + _avro_bytes(v) for k, v in meta.items()),
                       b"\x00", sync])
    data = b"".join(bodies)
    return b"".join([header, _zigzag_long(len(bodies)), _zigzag_long(len(data)), data, sync])


_MAX_LONG_BYTES = 9
"""The longest varint a block may hold: a 10th byte may carry bits beyond 64."""


def _fold(value: pl.Expr) -> pl.Expr:
    """v for v >= 0, -v - 1 (= ~v) below: a zig-zag varint and a two's complement integer
    take as many bytes as the fold's bits (plus the sign) need."""
    return value.xor((value < 0).cast(pl.Int64) * -1)


def _leading_zeros(folded: pl.Expr) -> pl.Expr:
    return folded.bitwise_leading_zeros().cast(pl.Int64)


def _varint_bytes(folded: pl.Expr) -> pl.Expr:
    """Bytes of the zig-zag varint of a value whose fold is `folded`: zig-zag takes one bit
    more than the fold, and each byte carries 7 (so (64 - zeros + 1 + 6) // 7, at least 1)."""
    return (71 - _leading_zeros(folded)) // 7


def _count_len(count: pl.Expr) -> pl.Expr:
    """Bytes of a non-negative count or length written as a long."""
    return _varint_bytes(count.cast(pl.Int64))


def _is_decimal(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("logicalType") == "decimal"


def _base(avro_type: Any) -> Any:
    """The type a ["null", T] union carries, or the type itself."""
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        return avro_type[1] if avro_type[0] == "null" else avro_type[0]
    return avro_type


def _kind(avro_type: Any) -> str | None:
    """How a (non-union) type is measured: long, string, decimal, strings (an array of
    strings), or None when the batch path does not read it."""
    if avro_type in ("long", "int", "string"):
        return "string" if avro_type == "string" else "long"
    if not isinstance(avro_type, dict):
        return None
    logical, base = avro_type.get("logicalType"), avro_type.get("type")
    if logical == "decimal" and base == "bytes" and avro_type.get("scale") == SCALE \
            and avro_type.get("precision", 99) <= 18:
        return "decimal"
    if logical == "timestamp-micros" and base == "long":
        return "long"
    if logical is None and base == "array" and avro_type.get("items") == "string":
        return "strings"
    if logical is None and base in ("long", "int", "string"):
        return _kind(base)
    return None


def _length(avro_type: Any, col: pl.Expr) -> pl.Expr | None:
    """The minimal encoded length of `col` (core units: Int64 timestamps and decimals), or
    None for a type the batch path does not read. Supported: string, long, int, decimal(18, 8)
    bytes, timestamp-micros, arrays of strings, and ["null", T] unions of those."""
    base = _base(avro_type)
    kind = _kind(base)
    if kind is None or (isinstance(base, list)):
        return None
    if kind == "long":
        length = _varint_bytes(_fold(col.cast(pl.Int64)))
    elif kind == "string":
        size = col.str.len_bytes().cast(pl.Int64)
        length = _count_len(size) + size
    elif kind == "decimal":  # a 1-byte length, then the fold's bits and a sign bit in bytes
        length = 1 + (72 - _leading_zeros(_fold(col))) // 8
    else:  # an array of strings, in one block: count, items, 0 (or a single 0 when empty)
        count = col.list.len().cast(pl.Int64)
        size = pl.element().str.len_bytes().cast(pl.Int64)
        items = col.list.eval(size + _count_len(size)).list.sum()
        length = pl.when(count == 0).then(1).otherwise(_count_len(count) + items + 1)
    if base is not avro_type:  # a union: its index byte, then the value unless null
        return 1 + pl.when(col.is_null()).then(0).otherwise(length)
    return length


def _is_long(avro_type: Any) -> bool:
    """A long (or int, or timestamp), possibly nullable: its length must stay below 10 bytes
    (a 10th byte may carry bits beyond 64, which the codec refuses and polars wraps)."""
    return _kind(_base(avro_type)) == "long"


def _converted(field: dict[str, Any], col: pl.Expr) -> pl.Expr:
    """The column in core units: timestamps as Int64 microseconds, decimals as Int64 units."""
    avro_type = field["type"]
    if isinstance(avro_type, list):
        avro_type = next(t for t in avro_type if t != "null")
    if _is_decimal(avro_type):  # the unscaled integer: the column's scale is SCALE
        return col.to_physical().cast(pl.Int64, strict=False)
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-micros":
        return col.dt.epoch("us")
    return col


def _edge_checks(schema: dict[str, Any]) -> list[pl.Expr]:
    """The codec's edge checks (`schemas.edge`: no NUL in text, no over-long identifier), true
    where a record passes."""
    name, checks = schema.get("name", ""), []
    nul = pl.element().str.contains("\x00", literal=True)
    for f in schema.get("fields", []):
        col = pl.col(f["name"])
        if name in NUL_CHECKED and is_text(f["type"]):
            checks.append(~col.str.contains("\x00", literal=True))
        elif name in NUL_CHECKED and is_text_array(f["type"]):
            checks.append(~col.list.eval(nul).list.any())
        if f["name"] in ID_FIELDS.get(name, ()):
            checks.append(col.str.len_bytes() <= MAX_ID_BYTES)
    return [check.fill_null(True) for check in checks]


def _in_range(field: dict[str, Any], raw: pl.Expr) -> pl.Expr | None:
    """Whether the read column fits the codec's bounds (decimal(18, 8); 1900..2299)."""
    avro_type = field["type"]
    if isinstance(avro_type, list):
        avro_type = next(t for t in avro_type if t != "null")
    if _is_decimal(avro_type):
        wide = raw.to_physical()
        return wide.is_between(-MAX_UNITS, MAX_UNITS).fill_null(True)
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-micros":
        us = raw.dt.epoch("us")
        return us.is_between(EVENT_TIME_MIN_US, EVENT_TIME_MAX_US).fill_null(True)
    return None


class _Plan:
    """The conversions and checks of one schema, built once, in two selects of small
    expressions (one large expression tree was measured many times slower)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        fields = schema.get("fields", [])
        self.names = [f["name"] for f in fields]
        units = [_converted(f, pl.col(f["name"])) for f in fields]
        parts = [_length(f["type"], u) for f, u in zip(fields, units, strict=True)]
        self.supported = bool(fields) and all(p is not None for p in parts)
        if not self.supported:
            return
        lengths = [f"_len{i}" for i in range(len(fields))]
        ranges = [r for f in fields if (r := _in_range(f, pl.col(f["name"]))) is not None]
        ranges += _edge_checks(schema)
        self.sizes = [*(u.alias(n) for u, n in zip(units, self.names, strict=True)),
                      pl.col(_BODY_LEN), pl.col(_BODY_AT),
                      (pl.all_horizontal(ranges) if ranges else pl.lit(True)).alias(_OK),
                      *(p.alias(n) for p, n in zip(parts, lengths, strict=True) if p is not None)]
        aligned = pl.sum_horizontal(lengths, ignore_nulls=False) == pl.col(_BODY_LEN)
        ok = pl.col(_OK)
        for field, length in zip(fields, lengths, strict=True):
            if _is_long(field["type"]):  # at most 9 bytes, after a union's index byte
                union = isinstance(field["type"], list)
                ok = ok & (pl.col(length) <= _MAX_LONG_BYTES + union)
        unions = [_union_byte(f, lengths[:i]) for i, f in enumerate(fields)
                  if isinstance(f["type"], list)]
        self.unions = [(f"_at{i}", f"_byte{i}") for i in range(len(unions))]
        self.checks = [*(pl.col(n) for n in self.names),
                       aligned.fill_null(False).alias(_ALIGNED), ok.fill_null(False).alias(_OK),
                       *(e.alias(a) for (a, _), (e, _) in zip(self.unions, unions, strict=True)),
                       *(e.alias(b) for (_, b), (_, e) in zip(self.unions, unions, strict=True))]


_BODY_LEN, _BODY_AT, _OK, _ALIGNED = "_body_len", "_body_at", "_ok", "_aligned"


def _union_byte(field: dict[str, Any], before: list[str]) -> tuple[pl.Expr, pl.Expr]:
    """Where the union index byte of `field` is (the body's start plus the lengths of
    the fields before it), and the byte it must be for the null read: index 0 is written
    0x00, index 1 0x02."""
    offset = pl.sum_horizontal(before) if before else pl.lit(0, pl.Int64)
    null_first = field["type"][0] == "null"
    want = (pl.when(pl.col(field["name"]).is_null()).then(0 if null_first else 2)
            .otherwise(2 if null_first else 0)).cast(pl.UInt8)
    return pl.col(_BODY_AT) + offset, want


_PLANS: dict[str, _Plan] = {}
_SEEN: dict[int, tuple[dict[str, Any], _Plan]] = {}


def _plan(schema: dict[str, Any]) -> _Plan:
    """The plan of `schema`, built once per distinct schema (and looked up by identity first:
    callers pass the same dict again and again)."""
    seen = _SEEN.get(id(schema))
    if seen is not None and seen[0] is schema:
        return seen[1]
    key = json.dumps(schema, sort_keys=True)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _Plan(schema)
    _SEEN[id(schema)] = (schema, plan)
    return plan


_STDERR_LOCK = threading.Lock()
_SCRATCH: list[IO[bytes]] = []
_PANIC = re.compile(rb"^thread '.*' (\(\d+\) )?panicked at ")
_PANIC_TAIL = re.compile(rb"^(note: |stack backtrace:|\s+\d+: |\s+at )")


def _without_panics(text: bytes) -> bytes:
    """`text` without Rust panic reports (the header, the message line after it, and the
    note or backtrace lines that follow)."""
    kept: list[bytes] = []
    skip = 0
    for line in text.splitlines(keepends=True):
        if _PANIC.match(line):
            skip = 1  # the message line
            continue
        if skip or _PANIC_TAIL.match(line) or (kept == [] and not line.strip()):
            skip = max(skip - 1, 0)
            continue
        kept.append(line)
    return b"".join(kept)


@contextmanager
def _panics_quieted() -> Iterator[None]:
    """The process's stderr (fd 2) goes to a scratch file meanwhile; afterwards what others
    wrote there is copied to the real stderr, without Rust panic reports. One block at a time
    (a lock): two redirections at once would leave stderr pointing at a scratch file."""
    with _STDERR_LOCK:
        if not _SCRATCH:  # one for the life of the process, reused (truncated) each time
            _SCRATCH.append(tempfile.TemporaryFile())  # noqa: SIM115
            atexit.register(_SCRATCH[0].close)
        scratch = _SCRATCH[0]
        scratch.seek(0)
        scratch.truncate()
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            scratch.seek(0)
            rest = _without_panics(scratch.read())
            if rest:
                os.write(2, rest)


def _quiet_polars_backtraces() -> None:
    """One deliberate polars panic with `RUST_BACKTRACE=0` (the variable restored after), so
    polars' Rust caches "no backtrace" (see the module docstring). At import: before the
    flow's threads run (the environment is changed for a moment)."""
    saved = os.environ.get("RUST_BACKTRACE")
    os.environ["RUST_BACKTRACE"] = "0"
    try:
        with _panics_quieted():
            pl.read_avro(io.BytesIO(container({"type": "record", "name": "Probe",
                                                "fields": [{"name": "s", "type": "string"}]},
                                               [b"\x0c"])))  # 6 bytes of string, none there
    except _FATAL:
        raise
    except BaseException:  # the panic, as intended
        pass
    finally:
        if saved is None:
            del os.environ["RUST_BACKTRACE"]
        else:
            os.environ["RUST_BACKTRACE"] = saved


_quiet_polars_backtraces()


def read_block(schema: dict[str, Any], bodies: Sequence[bytes]
               ) -> tuple[pl.DataFrame, list[int]] | None:
    """The records of `bodies` (Avro binary bodies written with `schema`, headers stripped)
    as columns in core units, and the positions of the bodies left out; or None when polars
    cannot read them or the block is not proven aligned (every record's minimal length equal
    to its body's). Once aligned, a record whose values fail a check of its own (a timestamp
    out of range, a union index byte, a 10-byte varint) is left out alone: the others were
    read from their own bytes. The caller decodes what is left out one by one. Never raises
    for bad input."""
    plan = _plan(schema)
    if not bodies or not plan.supported:
        return None
    try:
        with _panics_quieted():
            raw = pl.read_avro(io.BytesIO(container(schema, bodies)))
        if raw.height != len(bodies) or raw.columns != plan.names:
            return None
        sizes = pl.Series(_BODY_LEN, [len(b) for b in bodies], dtype=pl.Int64)
        frame = (raw.with_columns(sizes, (sizes.cum_sum() - sizes).alias(_BODY_AT))
                 .select(plan.sizes).select(plan.checks))
        if not frame[_ALIGNED].all():
            return None
        valid = frame[_OK]
        if plan.unions:
            data = b"".join(bodies)
            as_bytes = pl.Series(pa.Array.from_buffers(pa.uint8(), len(data),
                                                       [None, pa.py_buffer(data)]))
            for at, byte in plan.unions:
                valid = valid & (as_bytes.gather(frame[at]) == frame[byte])
        if valid.all():
            return frame.select(plan.names), []
        left_out = (~valid).arg_true().to_list()
        return frame.filter(valid).select(plan.names), left_out
    except _FATAL:
        raise
    except BaseException:  # polars errors, and Rust panics (pyo3 PanicException)
        return None
