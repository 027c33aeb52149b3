"""A compiled Avro binary reader for the flat records the hot path decodes (Trade, Quote, ...).

Why: fastavro's schemaless reader builds a dict per message and the codec then converts it
field by field (decimal bytes to units, arrays to tuples, enums); together about 10 µs per
tick, the largest single cost of the market flow (docs/flows.md). This reader walks the body
once and produces the core record's field values directly.

It is used only when the frame's writer schema equals this version's reader schema (no
resolution needed) and every field has a type it knows: string, bytes, long/int, boolean,
enum, decimal (bytes), arrays of those, and ["null", T] unions. Anything else (a record
written by an older or newer schema, nested records, maps, floats) goes through fastavro as
before. Malformed input raises `EOFError` (truncated) or `ValueError` (anything else
invalid); the codec turns both into dead letters exactly as it does for fastavro's errors.
tests/unit/test_fast_reader.py checks it against fastavro on random and mutated frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FieldReader = Callable[[bytes, int], tuple[Any, int]]
_U64 = (1 << 64) - 1


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (Avro int and long), at most 10 bytes and 64 bits.

    Stricter than fastavro, which reads longer varints with C's shift overflow (on x86 the
    shift count wraps), i.e. garbage; such a body is invalid here.
    """
    try:
        b = buf[pos]
        pos += 1
        n = b & 0x7F
        shift = 7
        while b & 0x80:
            if shift > 63:
                raise ValueError("varint longer than 10 bytes")
            b = buf[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
    except IndexError:
        raise EOFError("body ends inside a number") from None
    if n > _U64:
        raise ValueError("varint beyond 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = read_long(buf, pos)
    if n < 0:
        raise ValueError(f"negative length {n}")
    end = pos + n
    if end > len(buf):
        raise EOFError("body ends inside a byte string")
    return buf[pos:end], end


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bytes(buf, pos)
    return raw.decode("utf-8"), pos


def _read_boolean(buf: bytes, pos: int) -> tuple[bool, int]:
    if pos >= len(buf):
        raise EOFError("body ends inside a boolean")
    b = buf[pos]
    if b > 1:
        raise ValueError(f"boolean byte {b}")
    return b == 1, pos + 1


def _read_decimal(buf: bytes, pos: int) -> tuple[int, int]:
    raw, pos = _read_bytes(buf, pos)
    return int.from_bytes(raw, "big", signed=True), pos


def _enum(symbols: list[str], convert: Callable[[str], Any]) -> FieldReader:
    values = [convert(s) for s in symbols]

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(buf, pos)
        if not 0 <= index < len(values):
            raise ValueError(f"enum index {index} out of range")
        return values[index], pos

    return read


def _nullable(inner: FieldReader, null_first: bool) -> FieldReader:
    null_index = 0 if null_first else 1

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(buf, pos)
        if index == null_index:
            return None, pos
        if index != 1 - null_index:
            raise ValueError(f"union index {index} out of range")
        return inner(buf, pos)

    return read


def _array(items: FieldReader) -> FieldReader:
    def read(buf: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
        out: list[Any] = []
        while True:
            count, pos = read_long(buf, pos)
            if count == 0:
                return tuple(out), pos
            if count < 0:  # a block with its size in bytes first
                count = -count
                _size, pos = read_long(buf, pos)
            if count > len(buf) - pos:  # every item takes at least one byte
                raise EOFError("array longer than the body")
            for _ in range(count):
                value, pos = items(buf, pos)
                out.append(value)

    return read


_PRIMITIVES: dict[str, FieldReader] = {
    "string": _read_string,
    "bytes": _read_bytes,
    "long": read_long,
    "int": read_long,
    "boolean": _read_boolean,
}


def _type_reader(avro_type: Any, enums: dict[str, Callable[[str], Any]]) -> FieldReader | None:
    """The reader of one (logical-type-carrying) Avro type, or None when not supported."""
    if isinstance(avro_type, str):
        return _PRIMITIVES.get(avro_type)
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or "null" not in avro_type:
            return None
        other = avro_type[1] if avro_type[0] == "null" else avro_type[0]
        inner = _type_reader(other, enums)
        return None if inner is None else _nullable(inner, avro_type[0] == "null")
    if not isinstance(avro_type, dict):
        return None
    kind = avro_type.get("type")
    logical = avro_type.get("logicalType")
    if logical == "decimal" and kind == "bytes":
        return _read_decimal
    if logical in ("timestamp-micros", "timestamp-millis") and kind == "long":
        return read_long
    if kind == "enum" and avro_type.get("name") in enums:
        return _enum(list(avro_type["symbols"]), enums[avro_type["name"]])
    if kind == "array":
        items = _type_reader(avro_type.get("items"), enums)
        return None if items is None else _array(items)
    if kind in _PRIMITIVES and logical is None:
        return _PRIMITIVES[kind]
    return None


def compile_reader(schema: dict[str, Any], enums: dict[str, Callable[[str], Any]]
                   ) -> Callable[[bytes, int], tuple[list[Any], int]] | None:
    """A reader of `schema`'s body: (frame, start) -> (field values in order, end), or None.

    Decimals come back as their unscaled integers (the caller checks their range), arrays
    as tuples; `enums` maps an enum's name to its value type.
    """
    readers: list[FieldReader] = []
    for field in schema.get("fields", ()):
        reader = _type_reader(field["type"], enums)
        if reader is None:
            return None
        readers.append(reader)

    def read(buf: bytes, pos: int) -> tuple[list[Any], int]:
        values: list[Any] = []
        for reader in readers:
            value, pos = reader(buf, pos)
            values.append(value)
        return values, pos

    return read
