"""The truth about each record: which fault was injected and which verdict the pipeline owes it.

Tests and the filter-quality bench compare the pipeline's verdicts with these labels, so the
expected reasons mirror the tick filter's reject codes (with its default settings, see
`SEQ_WINDOW` and `QUOTE_MAX_AGE_US`), the codec's decode errors, and the order state machine's
"duplicate". docs/synthetic.md tabulates faults and reasons.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

# Mirrors of the defaults the expected verdicts depend on (tapeflow.core.market.filter_config,
# docs/design.md).
SEQ_WINDOW = 4096
QUOTE_MAX_AGE_US = 10_000_000


class Fault(StrEnum):
    """What was done to a record. `CLEAN` records are exactly what the market produced."""

    CLEAN = "clean"
    PRICE_SPIKE = "price_spike"
    """A trade printed far from the market (1 % to 900 %, and at least 40 ticks + 2 spreads)."""
    ZERO_PRICE = "zero_price"
    NEGATIVE_PRICE = "negative_price"
    ZERO_SIZE = "zero_size"
    NEGATIVE_SIZE = "negative_size"
    CROSSED_QUOTE = "crossed_quote"
    """bid > ask by 1 to 3 ticks."""
    DUPLICATE_SEQ = "duplicate_seq"
    """An exact re-send of an earlier tick, 1 ms to 2 s later (`ref_pos` points at it)."""
    OUT_OF_ORDER = "out_of_order"
    """A tick held back until after the next tick of its (venue, symbol) stream (at most 3 s)."""
    LATE = "late"
    """A trade delivered 1 to 10 minutes after its event time."""
    DUPLICATE_EXEC = "duplicate_exec"
    """An exact re-send of an execution report (same exec_id), 1 ms to 2 s later."""
    GARBAGE = "garbage"
    """Bytes that do not decode, written beside the record at `ref_pos`."""


class FeedEffect(StrEnum):
    """Genuine ticks changed the way real venues change them (`feed_effects`), not faults of
    the generator: the filter must accept them."""

    PACKET_MEMBER = "packet_member"
    """A genuine trade sharing its packet's sequence number."""
    SEQ_RESET = "seq_reset"
    """A genuine tick after its venue restarted numbering at 1."""
    REOPENING = "reopening"
    """A genuine trade after a halt, 10 % away from the price before it."""
    CONDITIONED = "conditioned"
    """A genuine trade with a volume-only sale condition (Z, W, 4)."""


class Reason:
    """Expected verdicts: the tick filter's reject codes and the codec's decode errors."""

    NON_POSITIVE_PRICE = "non_positive_price"
    NON_POSITIVE_SIZE = "non_positive_size"
    CROSSED_QUOTE = "crossed_quote"
    DUPLICATE_SEQ = "duplicate_seq"
    SEQ_TOO_OLD = "seq_too_old"
    OUTSIDE_QUOTE = "outside_quote"
    PRICE_OUTLIER = "price_outlier"
    DUPLICATE_EXEC = "duplicate"
    """The order state machine's classification of a repeated exec_id."""
    BAD_MAGIC = "bad_magic"
    TOO_SHORT = "too_short"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    TRUNCATED_BODY = "truncated_body"


class Label(NamedTuple):
    """The truth about the record at stream position `pos`."""

    pos: int
    """Position in the arrival-ordered stream of all topics (`Market.stream()`)."""
    topic: str
    row: int
    """Index in the market's list for this kind (= row of its Parquet file)."""
    kind: str
    """"trade", "quote", "execution" or "garbage"."""
    fault: str
    """A `Fault` value; "clean" for an untouched record."""
    expected_reason: str | None
    """Tick filter reject code, codec decode error, or order-machine "duplicate"; None when
    the record must be accepted (clean, out-of-order and late ticks inside the windows)."""
    symbol: str | None
    venue: str | None
    seq: int | None
    ts_event: int
    """Event time, int micros (for garbage: the record it was written beside)."""
    key: str
    """The Kafka key: symbol for market data, account_id for executions."""
    ref_pos: int | None = None
    """Duplicates: the original's position. Garbage: the record it was written beside."""
    delay_us: int | None = None
    """Arrival minus event time, for records that arrived late (duplicates included)."""
    magnitude_bps: int | None = None
    """Price spikes: the intended move in basis points of the clean price."""
    field: str | None = None
    """The corrupted field (price, size, bid_px, ask_sz, ...)."""
    original: int | None = None
    """The corrupted field's clean value."""
