"""The one codec: Confluent-framed Avro on the wire <-> the core's immutable records.

Frame: byte 0 = 0 (magic), bytes 1-4 = schema id (big-endian), then the Avro binary body.

Why fastavro directly and not confluent-kafka's AvroDeserializer: it was measured about 4x
slower per message (docs/design.md). Why "raw" schemas: decimal and timestamp logical types are
stripped before parsing, so fastavro hands back the unscaled decimal bytes and the integer
microseconds, which are exactly the core's representation (scale-8 int, int micros), instead
of building a `Decimal` and a `datetime` per field only for us to take them apart again.

A frame that cannot be decoded raises `DecodeError` with a stable `reason` code; the flows turn
it into a dead letter and carry on. Nothing here raises anything else for bad input. A schema
registry that cannot be asked is not bad input: the catalogue waits for it, then raises a
`StoreError` (`schemas.catalogue`), which the flows let stop them rather than dead-letter a
valid record.

What the codec refuses because no store could hold it (timestamps outside 1900-2299, over-long
identifiers, NUL characters) is in `schemas/edge.py`, with the reasons.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, NamedTuple

import fastavro

from schemas.catalogue import (
    RECORD_SUBJECTS,
    Catalogue,
    LocalCatalogue,
    RegistryCatalogue,
    UnknownSchemaError,
    current_schema,
)
from schemas.edge import (
    ID_FIELDS,
    MAX_ID_BYTES,
    NUL_CHECKED,
    DecodeError,
    check_ids,
    check_text,
    check_timestamps,
    is_text,
    is_text_array,
)
from schemas.fast_reader import compile_reader
from tapeflow.core.fixedpoint import MAX_UNITS
from tapeflow.core.market.candle_buckets import Candle
from tapeflow.core.models import (
    EVENT_TIME_MAX_US,
    EVENT_TIME_MIN_US,
    CashKind,
    CashMovement,
    DeadLetter,
    ExecType,
    ExecutionReport,
    OrderType,
    OrdStatus,
    Quote,
    RiskAlert,
    Severity,
    Side,
    Trade,
    Unit,
)
from tapeflow.errors import TapeflowError
from tapeflow.services.retry import RetryPolicy
from tapeflow.settings import Settings

__all__ = ["EVENT_TIME_MAX_US", "EVENT_TIME_MIN_US", "MAX_ID_BYTES", "Codec", "DecodeError",
           "EncodeError", "codec_for"]

MAGIC = 0
HEADER_LEN = 5

RECORD_TYPES: dict[str, type[Any]] = {
    "Trade": Trade,
    "Quote": Quote,
    "ExecutionReport": ExecutionReport,
    "RiskAlert": RiskAlert,
    "DeadLetter": DeadLetter,
    "CashMovement": CashMovement,
    "Candle": Candle,
}
_ENUMS: dict[str, type[Any]] = {
    "Side": Side,
    "OrderType": OrderType,
    "ExecType": ExecType,
    "OrdStatus": OrdStatus,
    "Severity": Severity,
    "Unit": Unit,
    "CashKind": CashKind,
}


class EncodeError(TapeflowError, ValueError):
    """A core record that cannot be represented on the wire (for example > decimal(18, 8))."""


def _strip_logical(node: Any) -> Any:
    """Copy of a schema with decimal and timestamp logical types replaced by their base type."""
    if isinstance(node, list):
        return [_strip_logical(n) for n in node]
    if isinstance(node, dict):
        if node.get("logicalType") in ("decimal", "timestamp-micros", "timestamp-millis"):
            return node["type"]
        return {k: _strip_logical(v) for k, v in node.items()}
    return node


def _is_decimal(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("logicalType") == "decimal"


def _is_timestamp(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return any(map(_is_timestamp, avro_type))
    return isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-micros"


def _precision(avro_type: Any) -> int:
    """The declared precision of a decimal type (or of the decimal in a nullable union)."""
    if isinstance(avro_type, list):
        return max((_precision(t) for t in avro_type), default=0)
    return int(avro_type.get("precision", 0)) if _is_decimal(avro_type) else 0


def _max_units(precision: int) -> int:
    """The largest unscaled value of `precision` digits (18: the core's `MAX_UNITS`)."""
    return MAX_UNITS if precision == 18 else 10**precision - 1


def _units_from_bytes(raw: bytes, precision: int = 18) -> int:
    units = int.from_bytes(raw, "big", signed=True)
    limit = _max_units(precision)
    if units > limit or units < -limit:
        raise ValueError(f"decimal exceeds precision {precision}")
    return units


def _units_to_bytes(units: int, precision: int = 18) -> bytes:
    limit = _max_units(precision)
    if units > limit or units < -limit:
        raise EncodeError(f"{units} units exceed decimal precision {precision}")
    return units.to_bytes((units.bit_length() + 8) // 8, "big", signed=True)


def _opt(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else fn(v)


class _FieldCodec(NamedTuple):
    name: str
    from_wire: Callable[[Any], Any] | None
    to_wire: Callable[[Any], Any] | None


def _field_codec(field: dict[str, Any]) -> _FieldCodec:
    """How one field converts, decided once per schema instead of once per message."""
    avro_type = field["type"]
    nullable = isinstance(avro_type, list) and "null" in avro_type
    if nullable:
        avro_type = next(t for t in avro_type if t != "null")
    name = field["name"]
    if _is_decimal(avro_type):
        digits = _precision(avro_type)

        def dec_from(raw: bytes) -> int:
            return _units_from_bytes(raw, digits)

        def dec_to(units: int) -> bytes:
            return _units_to_bytes(units, digits)
        return _FieldCodec(name, _opt(dec_from) if nullable else dec_from,
                           _opt(dec_to) if nullable else dec_to)
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        enum_cls = _ENUMS[avro_type["name"]]
        return _FieldCodec(name, _opt(enum_cls) if nullable else enum_cls, _opt(str))
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return _FieldCodec(name, tuple, list)
    return _FieldCodec(name, None, None)


class _RecordCodec:
    """Conversions for one record type, built from this version's (reader) schema."""

    def __init__(self, name: str) -> None:
        schema = current_schema(name)
        self.name = name
        self.record_type = RECORD_TYPES[name]
        self.reader = fastavro.parse_schema(_strip_logical(schema), named_schemas={})
        self.fields = [_field_codec(f) for f in schema["fields"]]
        missing = set(self.record_type._fields) ^ {f.name for f in self.fields}
        if missing:
            raise RuntimeError(f"{name}: schema and model disagree on fields {sorted(missing)}")
        # The compiled reader for frames written with this very schema (schemas/fast_reader.py).
        self.fast = compile_reader(schema, _ENUMS)
        self.decimal_fields = [(i, _max_units(_precision(f["type"])), _precision(f["type"]))
                               for i, f in enumerate(schema["fields"])
                               if _precision(f["type"])]
        self.timestamp_fields = [(i, f["name"]) for i, f in enumerate(schema["fields"])
                                 if _is_timestamp(f["type"])]
        self.id_fields = [(i, f["name"]) for i, f in enumerate(schema["fields"])
                          if f["name"] in ID_FIELDS.get(name, ())]
        checked = name in NUL_CHECKED
        self.text_fields = [(i, f["name"]) for i, f in enumerate(schema["fields"])
                            if checked and is_text(f["type"])]
        self.text_array_fields = [(i, f["name"]) for i, f in enumerate(schema["fields"])
                                  if checked and is_text_array(f["type"])]

    def from_values(self, values: list[Any]) -> Any:
        """The record from the compiled reader's values: decimal, timestamp and identifier
        ranges checked here (the common case inlined: this runs once per message)."""
        for i, limit, digits in self.decimal_fields:
            units = values[i]
            if units is not None and (units > limit or units < -limit):
                raise ValueError(f"decimal exceeds precision {digits}")
        for i, _ in self.timestamp_fields:
            us = values[i]
            if us is not None and not EVENT_TIME_MIN_US <= us <= EVENT_TIME_MAX_US:
                check_timestamps(self.name, values, self.timestamp_fields)
        if self.id_fields:
            check_ids(self.name, values, self.id_fields)
        for i, _ in self.text_fields:
            text = values[i]
            if text is not None and "\x00" in text:
                check_text(self.name, values, self.text_fields, [])
        for i, _ in self.text_array_fields:
            for text in values[i]:
                if "\x00" in text:
                    check_text(self.name, values, [], self.text_array_fields)
        return self.record_type(*values)

    def from_dict(self, data: dict[str, Any]) -> Any:
        values = []
        for name, conv, _ in self.fields:
            value = data[name]
            values.append(value if conv is None else conv(value))
        check_timestamps(self.name, values, self.timestamp_fields)
        check_ids(self.name, values, self.id_fields)
        check_text(self.name, values, self.text_fields, self.text_array_fields)
        return self.record_type(*values)

    def to_dict(self, record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (name, _, conv), value in zip(self.fields, record, strict=True):
            out[name] = value if conv is None else conv(value)
        return out


class Codec:
    """Encode core records to framed Avro and decode frames back, with schemas cached by id."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._records = {name: _RecordCodec(name) for name in RECORD_TYPES}
        self._writer_ids: dict[str, int] = {}
        # schema id -> (record codec, parsed writer schema or None when it equals the reader)
        self._by_id: dict[int, tuple[_RecordCodec, Any]] = {}

    def encode(self, record: Any) -> bytes:
        """Frame one core record with the id of its subject's current schema."""
        name = type(record).__name__
        rc = self._records[name]
        schema_id = self._writer_ids.get(name)
        if schema_id is None:
            schema_id = self._catalogue.id_for(RECORD_SUBJECTS[name], current_schema(name))
            self._writer_ids[name] = schema_id
        buf = io.BytesIO()
        buf.write(bytes((MAGIC,)))
        buf.write(schema_id.to_bytes(4, "big"))
        try:
            fastavro.schemaless_writer(buf, rc.reader, rc.to_dict(record))
        except EncodeError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise EncodeError(f"{name}: {exc}") from exc
        return buf.getvalue()

    def _resolve(self, schema_id: int) -> tuple[_RecordCodec, Any]:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            writer = self._catalogue.schema_for(schema_id)
        except UnknownSchemaError as exc:
            raise DecodeError("unknown_schema_id", str(exc)) from None
        name = str(writer.get("name", "")).rsplit(".", 1)[-1]
        if name not in self._records:
            raise DecodeError("unknown_record_type", f"schema id {schema_id} is {name!r}")
        rc = self._records[name]
        stripped = _strip_logical(writer)
        same = stripped == _strip_logical(current_schema(name))
        writer_parsed = None if same else fastavro.parse_schema(stripped, named_schemas={})
        self._by_id[schema_id] = (rc, writer_parsed)
        return rc, writer_parsed

    def decode(self, frame: bytes, expect: str | None = None) -> Any:
        """Decode one frame to its core record; `expect` names the record type a topic carries.

        Raises `DecodeError` (never anything else) for a frame that is not a valid record, and
        a `StoreError` when the schema registry cannot say whether its schema id exists.
        """
        if frame is None or len(frame) < HEADER_LEN:
            raise DecodeError("too_short", f"{0 if frame is None else len(frame)} bytes")
        if frame[0] != MAGIC:
            raise DecodeError("bad_magic", f"first byte {frame[0]}")
        schema_id = int.from_bytes(frame[1:HEADER_LEN], "big")
        rc, writer_parsed = self._resolve(schema_id)
        if expect is not None and rc.name != expect:
            raise DecodeError("wrong_record_type", f"expected {expect}, got {rc.name}")
        if writer_parsed is None and rc.fast is not None:
            return self._decode_fast(rc, frame)
        buf = io.BytesIO(frame)
        buf.seek(HEADER_LEN)
        try:
            if writer_parsed is None:
                data = fastavro.schemaless_reader(buf, rc.reader, None)
            else:
                data = fastavro.schemaless_reader(buf, writer_parsed, rc.reader)
        except (EOFError, StopIteration, IndexError) as exc:
            raise DecodeError("truncated_body", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise DecodeError("invalid_body", f"{type(exc).__name__}: {exc}") from None
        if buf.tell() != len(frame):
            raise DecodeError("trailing_bytes", f"{len(frame) - buf.tell()} bytes after the body")
        try:
            return rc.from_dict(data)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError("invalid_value", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _decode_fast(rc: _RecordCodec, frame: bytes) -> Any:
        """The compiled reader's path: the same checks and reasons as fastavro's path."""
        assert rc.fast is not None
        try:
            values, end = rc.fast(frame, HEADER_LEN)
        except EOFError as exc:
            raise DecodeError("truncated_body", f"EOFError: {exc}") from None
        except Exception as exc:
            raise DecodeError("invalid_body", f"{type(exc).__name__}: {exc}") from None
        if end != len(frame):
            raise DecodeError("trailing_bytes", f"{len(frame) - end} bytes after the body")
        try:
            return rc.from_values(values)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError("invalid_value", f"{type(exc).__name__}: {exc}") from None

    def writer_of(self, schema_id: int) -> tuple[str, bool]:
        """(record name, whether frames of this id are laid out as this version's schema) of
        a schema id; raises `DecodeError` for an id that is unknown or names no record of
        ours. Frames laid out as this version's schema can be read in blocks
        (`schemas.batch_decode`)."""
        rc, writer_parsed = self._resolve(schema_id)
        return rc.name, writer_parsed is None

    def schema_id_of(self, frame: bytes) -> int | None:
        """The id in a frame's header, or None when there is no valid header."""
        if len(frame) < HEADER_LEN or frame[0] != MAGIC:
            return None
        return int.from_bytes(frame[1:HEADER_LEN], "big")


def codec_for(settings: Settings, *, register: bool = False) -> Codec:
    """The codec for these settings: the registry when one is configured, else the catalogue.

    `register=True` registers this version's schemas first (a producer of the input topics
    does; the flows only look ids up).
    """
    if not settings.schema_registry.url:
        return Codec(LocalCatalogue.load(settings.schema_registry.catalogue))
    auth = settings.schema_registry.basic_auth
    extra = {"basic.auth.user.info": auth.get_secret_value()} if auth else None
    # A registry outage is waited out like a store outage: the sinks' schedule and deadline.
    retry = RetryPolicy(deadline_s=settings.runtime.sink_retry_deadline_s)
    catalogue = RegistryCatalogue.from_url(settings.schema_registry.url, extra, retry=retry,
                                           timeout_s=settings.schema_registry.timeout_s)
    if register:
        catalogue.register_current()
    return Codec(catalogue)
