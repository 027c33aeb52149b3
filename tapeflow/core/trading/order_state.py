"""The values of the order lifecycle: an order's state, the deltas an applied report makes
(`Fill`, `Correction`) and the three outcomes. The rules are in `orders` and `order_table`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.models import ExecType, OrderType, OrdStatus, Side

MAX_EXEC_IDS_PER_ORDER = 1024
"""Bound on the exec_ids (and executions in effect) remembered per order, most recent kept."""

TERMINAL_STATUSES: frozenset[OrdStatus] = frozenset(
    {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
)
FILL_TYPES: frozenset[ExecType] = frozenset({ExecType.PARTIAL_FILL, ExecType.FILL,
                                             ExecType.TRADE})
"""Executions: FIX 4.4 Trade (F) and FIX 4.2's Partial fill (1) and Fill (2)."""
CORRECTION_TYPES: frozenset[ExecType] = frozenset({ExecType.TRADE_CANCEL,
                                                   ExecType.TRADE_CORRECT})
PENDING_STATUSES: frozenset[OrdStatus] = frozenset({OrdStatus.PENDING_CANCEL,
                                                    OrdStatus.PENDING_REPLACE})


class TradeRecord(NamedTuple):
    """An execution in effect on an order: what a later cancel or correct refers to."""

    exec_id: str
    qty: int
    price: int
    commission: int
    ts_event: int


@dataclass(frozen=True, slots=True)
class OrderState:
    """The current state of one order, as the stores' `orders` row.

    `version` starts at 1 and grows by one with every applied report, so an upsert guarded
    by it never moves a row backwards on replay. `cum_notional` is sum(qty * price) at scale
    16 over the executions in effect, exact. `status` is the order's own status (derived
    from the reports' types and quantities); `pending` a cancel or replace awaiting its
    answer; `ord_status` what FIX reports, the pending status taking precedence.
    """

    order_id: str
    client_order_id: str | None
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    order_qty: int
    limit_price: int | None
    stop_price: int | None
    cum_qty: int
    leaves_qty: int
    cum_notional: int
    status: OrdStatus
    ts_created: int
    ts_last: int
    version: int
    exec_ids: tuple[str, ...]
    pending: OrdStatus | None = None
    trades: tuple[TradeRecord, ...] = ()
    forgotten_cum: int = 0
    """cum_qty when the oldest remembered exec_id was applied: fills at or below it with an
    unknown exec_id may be redeliveries of forgotten ones."""

    @property
    def avg_px(self) -> int | None:
        """Volume-weighted fill price, scale 8, rounded half-even; None before any fill."""
        if self.cum_qty == 0:
            return None
        return div_round(self.cum_notional, self.cum_qty)

    @property
    def is_terminal(self) -> bool:
        """Nothing is open and nothing is pending: the order is kept only to judge late
        reports (a day order done for the day with nothing left is terminal too)."""
        if self.pending is not None:
            return False
        if self.status == OrdStatus.DONE_FOR_DAY:
            return self.leaves_qty == 0
        return self.status in TERMINAL_STATUSES

    @property
    def ord_status(self) -> OrdStatus:
        """FIX OrdStatus of the order: a pending cancel or replace takes precedence."""
        return self.pending if self.pending is not None else self.status


class Fill(NamedTuple):
    """The delta one applied execution makes: what positions and cash consume."""

    exec_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    qty: int
    price: int
    commission: int
    ts_event: int


class Correction(NamedTuple):
    """A Trade Cancel (`new` None) or Trade Correct of an earlier execution: positions undo
    `old`'s effect and book `new` as if it had been the execution all along."""

    exec_id: str
    exec_ref_id: str
    account_id: str
    symbol: str
    side: Side
    old: TradeRecord
    new: Fill | None
    ts_event: int


class Applied(NamedTuple):
    order: OrderState
    fill: Fill | None
    correction: Correction | None = None
    client_id_clash: str | None = None
    """Set by the order book: another live order of the account already uses this order's
    client_order_id (FIX ClOrdID must be unique among live orders)."""


class Duplicate(NamedTuple):
    order_id: str
    exec_id: str
    reason: str


class Invalid(NamedTuple):
    order_id: str
    exec_id: str
    reason: str


Outcome = Applied | Duplicate | Invalid
