"""What the codec refuses at the edge because no store could hold it, with a stable reason each.

Timestamps outside `EVENT_TIME_MIN_US`..`EVENT_TIME_MAX_US` (1900-01-01 to 2299-12-31, the range
of ClickHouse's DateTime64 and well inside Postgres's) are refused here with reason
`timestamp_out_of_range`: such a record could not be stored (not even as a rejected tick, whose
row keeps the timestamp), and a year-2300 print would move a symbol's watermark centuries ahead.
Refusing it at the edge keeps the raw bytes on the dead-letter topic (docs/bad-input.md).

Likewise the identifiers of an execution report (exec_id, order_id, client_order_id, account_id,
symbol, exec_ref_id) and of a cash movement longer than `MAX_ID_BYTES` in UTF-8 are refused
(`identifier_too_long`): they become Postgres primary keys, and a b-tree index row holds at most
2704 bytes, so one such report fails every write of its batch and stalls the trading flow
(tests/integration/test_invalid_executions.py). A trade's or quote's symbol and venue are held to
the same bound: they are keys of every market table and of `md.marks`, and a symbol becomes part of
positions' and alerts' keys downstream.

And a NUL character in any text field of a trade, quote, execution report or alert is refused
(`nul_byte`): Postgres refuses NUL in every text value, so such a record could be stored
nowhere whole, and one row Postgres refuses used to stop the flow at every checkpoint.

Each refusal raises `DecodeError`; the flows make it a dead letter with the raw bytes
(docs/bad-input.md). The checks run once per decoded frame, so the codec inlines their common
case and calls these only to build the error.
"""

from __future__ import annotations

from typing import Any

from tapeflow.core.models import EVENT_TIME_MAX_US, EVENT_TIME_MIN_US
from tapeflow.errors import TapeflowError

MAX_ID_BYTES = 256
"""The longest identifier (an execution report's ids, a tick's symbol and venue), in UTF-8
bytes (two fit a Postgres key)."""
ID_FIELDS = {"ExecutionReport": ("exec_id", "order_id", "client_order_id", "account_id",
                                 "symbol", "exec_ref_id"),
             "CashMovement": ("movement_id", "account_id"),
             "Trade": ("symbol", "venue"),
             "Quote": ("symbol", "venue")}
NUL_CHECKED = frozenset({"Trade", "Quote", "ExecutionReport", "RiskAlert", "CashMovement"})
"""Records whose text may not hold a NUL character: Postgres refuses one in any text value, and
a symbol reaches Postgres through marks, positions and alerts. (A dead letter's text is ours
and its raw bytes are bytes.)"""


class DecodeError(TapeflowError, ValueError):
    """A frame that is not a valid record. `reason` is a stable code for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_ids(name: str, values: Any, fields: list[tuple[int, str]]) -> None:
    for i, field_name in fields:
        text = values[i]
        # A str of n characters is at most 4n UTF-8 bytes: encode only the long ones.
        if text is not None and len(text) * 4 > MAX_ID_BYTES and \
                len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise DecodeError("identifier_too_long",
                              f"{name}.{field_name} is longer than {MAX_ID_BYTES} bytes: "
                              f"{text[:40]!r}...")


def check_text(name: str, values: Any, fields: list[tuple[int, str]],
               arrays: list[tuple[int, str]]) -> None:
    for i, field_name in fields:
        text = values[i]
        if text is not None and "\x00" in text:
            raise DecodeError("nul_byte", f"{name}.{field_name} holds a NUL character: "
                                          f"{text[:40]!r}")
    for i, field_name in arrays:
        for text in values[i]:
            if "\x00" in text:
                raise DecodeError("nul_byte", f"{name}.{field_name} holds a NUL character: "
                                              f"{text[:40]!r}")


def is_text(avro_type: Any) -> bool:
    """A string field (nullable or not)."""
    if isinstance(avro_type, list):
        return any(map(is_text, avro_type))
    return avro_type == "string" or (isinstance(avro_type, dict)
                                     and avro_type.get("type") == "string")


def is_text_array(avro_type: Any) -> bool:
    """An array of strings (a trade's conditions)."""
    return isinstance(avro_type, dict) and avro_type.get("type") == "array" and \
        is_text(avro_type.get("items"))


def check_timestamps(name: str, values: Any, fields: list[tuple[int, str]]) -> None:
    for i, field_name in fields:
        us = values[i]
        if us is not None and not EVENT_TIME_MIN_US <= us <= EVENT_TIME_MAX_US:
            raise DecodeError("timestamp_out_of_range",
                              f"{name}.{field_name} = {us} us is outside 1900-01-01..2299-12-31")
