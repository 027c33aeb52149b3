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
  record i was read from exactly body i: no shifting, no trailing bytes, no over-long varints;
- every union index byte (found at its computed offset) is 0x00 or 0x02 and agrees with the
  null it produced;
- decimals fit decimal(18, 8) and timestamps the 1900..2299 range of the codec;
- no varint is 10 bytes long (a 10th byte may carry bits beyond 64, which the codec refuses
  and polars would wrap).

Anything else (an error, a panic, a failed check, a schema type not listed in `_length`)
returns None, and the caller decodes those frames one by one, so every bad frame becomes its
own dead letter with its own reason (`schemas.batch_decode`).

Output columns are the record's fields with the core's fixed-point representation: Int64
microseconds for timestamps and Int64 scale-8 units for decimals.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

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


_VARINT_STEPS = pl.Series([2 ** (7 * k - 1) for k in range(1, 10)], dtype=pl.Int64)
"""A zig-zag varint of v takes 1 byte plus one per step its fold (v, or -v - 1 below 0)
reaches."""
_DECIMAL_STEPS = pl.Series([2 ** (8 * k - 1) for k in range(1, 8)], dtype=pl.Int64)
"""A two's complement integer takes 1 byte plus one per step its fold reaches (up to 8 bytes
for |units| <= 10**18 - 1, the range checked first)."""
_VARINT_FOLD_MAX = 2**62
"""Folds at or above this take 10 bytes, whose last may carry bits beyond 64."""


def _fold(value: pl.Expr) -> pl.Expr:
    return pl.when(value >= 0).then(value).otherwise(-(value + 1))


def _steps(steps: pl.Series, folded: pl.Expr) -> pl.Expr:
    return pl.lit(steps).search_sorted(folded, side="right").cast(pl.Int64)


def _count_len(count: pl.Expr) -> pl.Expr:
    """Bytes of a non-negative count or length written as a long (zig-zag: 2n)."""
    return 1 + _steps(_VARINT_STEPS, count.cast(pl.Int64))


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
        length = 1 + _steps(_VARINT_STEPS, _fold(col.cast(pl.Int64)))
    elif kind == "string":
        size = col.str.len_bytes().cast(pl.Int64)
        length = _count_len(size) + size
    elif kind == "decimal":
        length = 2 + _steps(_DECIMAL_STEPS, _fold(col))
    else:  # an array of strings, in one block: count, items, 0 (or a single 0 when empty)
        count = col.list.len().cast(pl.Int64)
        # Each item: its bytes and a 1-byte length, 2 bytes from 64 (`_varint_ok` refuses
        # items of 8 KiB or more). Elementwise only: list.eval is per list otherwise.
        items = _item_sizes(col).list.eval(
            pl.element() + 1 + (pl.element() >= 2**6).cast(pl.Int64)).list.sum()
        length = pl.when(count == 0).then(1).otherwise(_count_len(count) + items + 1)
    if base is not avro_type:  # a union: its index byte, then the value unless null
        return 1 + pl.when(col.is_null()).then(0).otherwise(length)
    return length


def _item_sizes(col: pl.Expr) -> pl.Expr:
    return col.list.eval(pl.element().str.len_bytes().cast(pl.Int64))


def _varint_ok(avro_type: Any, col: pl.Expr) -> pl.Expr | None:
    """Longs must fold below 2**62 (at most 9 varint bytes); array items of strings must be
    shorter than 8 KiB (a 2-byte length, as `_length` counts them)."""
    kind = _kind(_base(avro_type))
    if kind == "long":
        return (_fold(col.cast(pl.Int64)) < _VARINT_FOLD_MAX).fill_null(True)
    if kind == "strings":
        return (_item_sizes(col).list.max().fill_null(0) < 2**13).fill_null(True)
    return None


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
    """The conversions and checks of one schema, built once, in three selects of small
    expressions (one large expression tree was measured many times slower)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        fields = schema.get("fields", [])
        self.names = [f["name"] for f in fields]
        units = [_converted(f, pl.col(f["name"])) for f in fields]
        parts = [_length(f["type"], pl.col(f["name"])) for f in fields]
        self.supported = bool(fields) and all(p is not None for p in parts)
        if not self.supported:
            return
        lengths = [f"_len{i}" for i in range(len(fields))]
        ranges = [r for f in fields if (r := _in_range(f, pl.col(f["name"]))) is not None]
        varints = [v for f in fields if (v := _varint_ok(f["type"], pl.col(f["name"])))
                   is not None]
        self.units = [*(u.alias(n) for u, n in zip(units, self.names, strict=True)),
                      pl.col(_BODY_LEN), pl.col(_BODY_AT),
                      (pl.all_horizontal(ranges) if ranges else pl.lit(True)).alias(_OK)]
        self.sizes = [*(pl.col(n) for n in self.names), pl.col(_BODY_LEN), pl.col(_BODY_AT),
                      (pl.col(_OK) & pl.all_horizontal(varints) if varints else pl.col(_OK)
                       ).alias(_OK),
                      *(p.alias(n) for p, n in zip(parts, lengths, strict=True) if p is not None)]
        ok = pl.col(_OK) & (pl.sum_horizontal(lengths) == pl.col(_BODY_LEN))
        unions = [_union_byte(f, lengths[:i]) for i, f in enumerate(fields)
                  if isinstance(f["type"], list)]
        self.unions = [(f"_at{i}", f"_byte{i}") for i in range(len(unions))]
        self.checks = [*(pl.col(n) for n in self.names), ok.fill_null(False).alias(_OK),
                       *(e.alias(a) for (a, _), (e, _) in zip(self.unions, unions, strict=True)),
                       *(e.alias(b) for (_, b), (_, e) in zip(self.unions, unions, strict=True))]


_BODY_LEN, _BODY_AT, _OK = "_body_len", "_body_at", "_ok"


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


def _plan(schema: dict[str, Any]) -> _Plan:
    key = json.dumps(schema, sort_keys=True)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _Plan(schema)
    return plan


def read_block(schema: dict[str, Any], bodies: Sequence[bytes]) -> pl.DataFrame | None:
    """The records of `bodies` (Avro binary bodies written with `schema`, headers stripped)
    as columns in core units, or None when polars cannot read them or any check fails (the
    caller then decodes them one by one). Never raises for bad input."""
    plan = _plan(schema)
    if not bodies or not plan.supported:
        return None
    try:
        raw = pl.read_avro(io.BytesIO(container(schema, bodies)))
        if raw.height != len(bodies) or raw.columns != plan.names:
            return None
        sizes = pl.Series(_BODY_LEN, [len(b) for b in bodies], dtype=pl.Int64)
        frame = (raw.with_columns(sizes, (sizes.cum_sum() - sizes).alias(_BODY_AT))
                 .select(plan.units).select(plan.sizes).select(plan.checks))
        if not frame[_OK].all():
            return None
        if plan.unions:
            data = b"".join(bodies)
            as_bytes = pl.Series(pa.Array.from_buffers(pa.uint8(), len(data),
                                                       [None, pa.py_buffer(data)]))
            for at, byte in plan.unions:
                if not (as_bytes.gather(frame[at]) == frame[byte]).all():
                    return None
        return frame.select(plan.names)
    except _FATAL:
        raise
    except BaseException:  # polars errors, and Rust panics (pyo3 PanicException)
        return None
