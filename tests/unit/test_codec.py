"""The codec: framing, decimal and null edge values, and every kind of bad bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec, DecodeError, EncodeError
from tapeflow.core.fixedpoint import MAX_UNITS
from tapeflow.core.models import Trade
from tests.support.records import T0, edge_records

CODEC = Codec(LocalCatalogue.load())
TRADE = Trade("AAPL", "XNAS", T0, 7, 18_912_000_000, 100 * 10**8, "x1", ("@",))


@pytest.mark.parametrize("record", edge_records(), ids=lambda r: type(r).__name__)
def test_every_schema_round_trips_exactly(record: object) -> None:
    frame = CODEC.encode(record)
    assert frame[0] == 0
    assert CODEC.decode(frame, expect=type(record).__name__) == record


def test_frame_header_is_magic_then_big_endian_schema_id() -> None:
    frame = CODEC.encode(TRADE)
    assert frame[0] == 0
    assert struct.unpack(">I", frame[1:5])[0] == LocalCatalogue.load().id_for("md.trades-value")


def test_decimals_are_avro_decimal_18_8_bytes() -> None:
    """The body holds the unscaled two's-complement integer, as other Avro readers expect."""
    import io

    import fastavro

    from schemas.catalogue import current_schema

    frame = CODEC.encode(TRADE)
    parsed = fastavro.parse_schema(current_schema("Trade"), named_schemas={})
    data = fastavro.schemaless_reader(io.BytesIO(frame[5:]), parsed, None)
    assert str(data["price"]) == "189.12000000"
    assert data["ts_event"].tzinfo is not None and data["ts_event"].utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "too_short"),
        (b"\x00\x00\x00", "too_short"),
        (b"\x01" + CODEC.encode(TRADE)[1:], "bad_magic"),
        (b"\x00\x00\x00\x03\xe7" + CODEC.encode(TRADE)[5:], "unknown_schema_id"),
        (CODEC.encode(TRADE)[:-4], "truncated_body"),
        (CODEC.encode(TRADE) + b"\x00", "trailing_bytes"),
        (CODEC.encode(TRADE)[:5], "truncated_body"),
    ],
)
def test_bad_bytes_give_a_typed_error_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(frame)
    assert info.value.reason == reason


def test_a_record_of_another_type_on_a_topic_is_refused() -> None:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(CODEC.encode(TRADE), expect="Quote")
    assert info.value.reason == "wrong_record_type"


def test_a_decimal_beyond_precision_18_is_refused_on_decode() -> None:
    """A foreign producer could write 19 digits; the core must never see them."""
    import io

    import fastavro

    from schemas.catalogue import current_schema
    from schemas.codec import _strip_logical

    raw = fastavro.parse_schema(_strip_logical(current_schema("Trade")), named_schemas={})
    body = io.BytesIO()
    too_big = (MAX_UNITS + 1).to_bytes(8, "big", signed=True)
    fastavro.schemaless_writer(body, raw, {"symbol": "A", "venue": "V", "ts_event": 0, "seq": 0,
                                           "price": too_big, "size": b"\x01", "trade_id": None,
                                           "conditions": []})
    with pytest.raises(DecodeError) as info:
        CODEC.decode(CODEC.encode(TRADE)[:5] + body.getvalue())
    assert info.value.reason == "invalid_value"


def test_encoding_beyond_precision_18_is_refused() -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(TRADE._replace(price=MAX_UNITS + 1))


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_decode_error(frame: bytes) -> None:
    try:
        CODEC.decode(frame)
    except DecodeError as exc:
        assert exc.reason


@settings(max_examples=2000, deadline=None)
@given(st.data())
def test_mutated_frames_decode_or_fail_typed(data: st.DataObject) -> None:
    frame = bytearray(CODEC.encode(TRADE))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    try:
        decoded = CODEC.decode(bytes(frame))
    except DecodeError:
        return
    assert isinstance(decoded, tuple)


def _v1_frame(name: str, schema_id: int, record: dict[str, object]) -> bytes:
    """A frame as a producer of the first schema version (ids 3 and 4) wrote it."""
    import io

    import fastavro

    from schemas.catalogue import load_avsc
    from schemas.codec import _strip_logical

    writer = fastavro.parse_schema(_strip_logical(load_avsc(f"avro/{name}.v1.avsc")))
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, writer, record)
    return buf.getvalue()


def test_first_version_frames_still_decode_with_the_new_fields_defaulted() -> None:
    """Schema evolution (docs/schema-evolution.md): today's producers write ExecutionReport v1
    (id 3) and RiskAlert v1 (id 4); v2 adds exec_ref_id, FIX 4.4 exec types and `unit`."""
    from tapeflow.core.models import ExecType, ExecutionReport, OrdStatus, RiskAlert, Unit

    report = {"exec_id": "e1", "order_id": "o1", "client_order_id": None, "account_id": "A",
              "symbol": "X", "side": "BUY", "order_type": "LIMIT", "exec_type": "PARTIAL_FILL",
              "ord_status": "PARTIALLY_FILLED", "order_qty": (10 * 10**8).to_bytes(8, "big"),
              "limit_price": (5 * 10**8).to_bytes(8, "big"), "stop_price": None,
              "last_qty": (10**8).to_bytes(8, "big"), "last_px": (5 * 10**8).to_bytes(8, "big"),
              "cum_qty": (10**8).to_bytes(8, "big"), "leaves_qty": (9 * 10**8).to_bytes(8, "big"),
              "avg_px": None, "commission": None, "reject_reason": None, "ts_event": T0}
    got = CODEC.decode(_v1_frame("ExecutionReport", 3, report), expect="ExecutionReport")
    assert isinstance(got, ExecutionReport) and got.exec_ref_id is None
    assert got.exec_type == ExecType.PARTIAL_FILL and got.ord_status == OrdStatus.PARTIALLY_FILLED
    assert got.cum_qty == 10**8
    alert = {"alert_id": "a", "rule": "order_size", "severity": "WARNING", "account_id": "A",
             "symbol": None, "ts_event": T0, "observed": (10**8).to_bytes(8, "big"),
             "limit": None, "message": "m", "source_event_id": "e"}
    decoded = CODEC.decode(_v1_frame("RiskAlert", 4, alert), expect="RiskAlert")
    assert isinstance(decoded, RiskAlert) and decoded.unit is None and decoded.observed == 10**8
    # This version writes v2, under its own ids (6 and 7), never under the v1 ids.
    v2 = CODEC.encode(decoded._replace(unit=Unit.BPS))
    assert struct.unpack(">I", v2[1:5])[0] == 7
    assert CODEC.decode(v2, expect="RiskAlert").unit == Unit.BPS
