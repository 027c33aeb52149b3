"""Why a tick was refused, as stable codes, and the record that carries the refusal.

Every rejected tick is written to `rejected_ticks` with one of these codes (docs/design.md,
"Stores"), so the codes are part of the storage contract: add new ones, never rename existing ones.
Each tick gets exactly one code, the first rule it fails in the documented order of the
tick filter (`tapeflow.core.market.tick_filter`), so the same tick always gets the same code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from tapeflow.core.models import Quote, Trade


class TickKind(StrEnum):
    TRADE = "trade"
    QUOTE = "quote"


class RejectReason(StrEnum):
    NON_FINITE = "non_finite"
    """Assigned by adapters (codec, backfill reader): the core holds integers, which are always
    finite, so a NaN or infinity can only be caught where the text or float is converted."""
    NON_POSITIVE_PRICE = "non_positive_price"
    NON_POSITIVE_SIZE = "non_positive_size"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_SYMBOL = "unknown_symbol"
    DUPLICATE_SEQ = "duplicate_seq"
    SEQ_TOO_OLD = "seq_too_old"
    """Below the remembered sequence window: it may or may not be a duplicate and memory is
    bounded, so it is refused rather than risk counting a print twice."""
    CROSSED_QUOTE = "crossed_quote"
    WIDE_SPREAD = "wide_spread"
    PRICE_OUTLIER = "price_outlier"
    OUTSIDE_QUOTE = "outside_quote"
    TOO_LATE = "too_late"
    """Older than the candle retention horizon: its bucket is final and no longer held."""


class Rejection(NamedTuple):
    """A refused tick, kept whole so nothing is dropped silently."""

    kind: TickKind
    reason: RejectReason
    tick: Trade | Quote
    detail: str


class SequenceGap(NamedTuple):
    """Sequence numbers skipped by a venue stream: an observation, not a rejection.

    Reported once, when the jump is seen. A missing tick that arrives later is accepted (if it is
    not a duplicate) and counted as a gap fill, but the report is not withdrawn: downstream risk
    rules alert on the gap when it happens, which is when it matters.
    """

    kind: TickKind
    venue: str
    symbol: str
    expected: int
    """First missing sequence number."""
    received: int
    missing: int
    ts_event: int
    """Event time of the tick that revealed the gap."""
