"""The wire records as immutable core values.

Field names are exactly the Avro field names of `schemas/avro/*.avsc` (docs/design.md, "Wire
contract"). Prices, sizes and money are `int` scale-8 units (see `fixedpoint`); timestamps
are `int` microseconds since the Unix epoch, UTC. `NamedTuple` rather than a frozen dataclass
because construction and attribute access are the cheapest immutable option in CPython, and
every tick builds one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

EVENT_TIME_MIN_US = -2_208_988_800_000_000
"""1900-01-01T00:00:00Z: the earliest event time Tapeflow accepts, the lower end of
ClickHouse's DateTime64 (the codec and the backfill reader refuse earlier ones)."""
EVENT_TIME_MAX_US = 10_413_791_999_999_999
"""2299-12-31T23:59:59.999999Z: the latest event time Tapeflow accepts, DateTime64's upper end."""


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class ExecType(StrEnum):
    """FIX 4.4 ExecType (tag 150), the values an OMS sends for the order lifecycle.

    `TRADE` (F) is FIX 4.4's one execution type, its OrdStatus telling partial or full;
    `PARTIAL_FILL` (1) and `FILL` (2) are FIX 4.2's and still read (the wire of earlier
    producers). `TRADE_CANCEL` (H) and `TRADE_CORRECT` (G) name the execution they bust or
    correct in `ExecutionReport.exec_ref_id`. New symbols are appended (schema evolution:
    `schemas/avro/ExecutionReport.avsc`)."""

    NEW = "NEW"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRADE = "TRADE"
    PENDING_NEW = "PENDING_NEW"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_REPLACE = "PENDING_REPLACE"
    DONE_FOR_DAY = "DONE_FOR_DAY"
    RESTATED = "RESTATED"
    TRADE_CANCEL = "TRADE_CANCEL"
    TRADE_CORRECT = "TRADE_CORRECT"


class OrdStatus(StrEnum):
    """FIX 4.4 OrdStatus (tag 39)."""

    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    PENDING_REPLACE = "PENDING_REPLACE"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    DONE_FOR_DAY = "DONE_FOR_DAY"


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        """Order of escalation: INFO < WARNING < CRITICAL."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Unit(StrEnum):
    """What a risk alert's `observed` and `limit` are measured in (both in the same unit)."""

    BPS = "bps"
    QUANTITY = "quantity"
    MONEY = "money"
    SECONDS = "seconds"
    COUNT = "count"


class CashKind(StrEnum):
    """Why an account's cash moved outside trading: capital in, capital out, or a charge."""

    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    FEE = "FEE"


class Trade(NamedTuple):
    """One print on the tape."""

    symbol: str
    venue: str
    ts_event: int
    seq: int
    price: int
    size: int
    trade_id: str | None = None
    conditions: tuple[str, ...] = ()


class Quote(NamedTuple):
    """Top of book at one venue."""

    symbol: str
    venue: str
    ts_event: int
    seq: int
    bid_px: int
    bid_sz: int
    ask_px: int
    ask_sz: int


class ExecutionReport(NamedTuple):
    """One FIX 4.4 ExecutionReport from the order-management system."""

    exec_id: str
    order_id: str
    client_order_id: str | None
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    exec_type: ExecType
    ord_status: OrdStatus
    order_qty: int
    limit_price: int | None
    stop_price: int | None
    last_qty: int
    last_px: int | None
    cum_qty: int
    leaves_qty: int
    avg_px: int | None
    commission: int | None
    reject_reason: str | None
    ts_event: int
    exec_ref_id: str | None = None
    """FIX ExecRefID (tag 19): the execution a TRADE_CANCEL or TRADE_CORRECT refers to."""


class CashMovement(NamedTuple):
    """Cash in or out of an account that is not a trade (`oms.cash`, keyed by account_id).

    `amount` is positive (scale 8); `kind` gives the direction: a deposit adds it, a
    withdrawal or a fee takes it away. `movement_id` is unique: a repeat is a duplicate.
    """

    movement_id: str
    account_id: str
    kind: CashKind
    amount: int
    currency: str
    ts_event: int
    note: str | None = None


class RiskAlert(NamedTuple):
    """A risk rule's verdict. `alert_id` is a function of its content, so a replay repeats it."""

    alert_id: str
    rule: str
    severity: Severity
    account_id: str | None
    symbol: str | None
    ts_event: int
    observed: int | None
    limit: int | None
    message: str
    source_event_id: str
    unit: Unit | None = None
    """The unit of `observed` and `limit` (None: the alert carries no numbers)."""


class DeadLetter(NamedTuple):
    """A record that could not be decoded, kept whole with the reason, never dropped."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw: bytes
    ts: int
