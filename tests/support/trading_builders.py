"""Builders for consistent execution reports, orders and fills in the trading tests (unit and
integration) and the Postgres scenario: `OrderSim` (one order's reports), `fill`, `u` (units)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side
from tapeflow.core.trading.orders import Fill

T0 = 1_767_623_400_000_000  # 2026-01-05T14:30:00Z (a Monday), microseconds


def u(x: int | str) -> int:
    """Whole or decimal-string numbers as scale-8 units (no floats in tests either)."""
    return x * ONE if isinstance(x, int) else to_units(x)


@dataclass
class OrderSim:
    """An OMS stand-in for one order: emits reports that are consistent with each other."""

    order_id: str
    qty: int
    side: Side = Side.BUY
    account_id: str = "ACC"
    symbol: str = "XYZ"
    order_type: OrderType = OrderType.LIMIT
    limit_price: int | None = 100 * ONE
    stop_price: int | None = None
    ts: int = T0
    cum: int = 0
    seq: int = 0
    ids: list[str] = field(default_factory=list)
    executions: dict[str, int] = field(default_factory=dict)
    """exec_id -> quantity of the executions in effect (for busts and corrections)."""
    pending: OrdStatus | None = None
    resting: OrdStatus | None = None
    """CANCELED, EXPIRED or DONE_FOR_DAY once the OMS said so (a bust keeps it)."""

    def _report(
        self,
        exec_type: ExecType,
        ord_status: OrdStatus,
        *,
        last_qty: int = 0,
        last_px: int | None = None,
        leaves: int | None = None,
        commission: int | None = None,
        cum: int | None = None,
        order_qty: int | None = None,
        exec_ref_id: str | None = None,
    ) -> ExecutionReport:
        self.seq += 1
        self.ts += 1_000
        exec_id = f"{self.order_id}-x{self.seq}"
        self.ids.append(exec_id)
        qty = self.qty if order_qty is None else order_qty
        cum_qty = self.cum if cum is None else cum
        return ExecutionReport(
            exec_id=exec_id,
            order_id=self.order_id,
            client_order_id=f"c-{self.order_id}",
            account_id=self.account_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            exec_type=exec_type,
            ord_status=ord_status,
            order_qty=qty,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            last_qty=last_qty,
            last_px=last_px,
            cum_qty=cum_qty,
            leaves_qty=max(qty - cum_qty, 0) if leaves is None else leaves,
            avg_px=None,
            commission=commission,
            reject_reason=None,
            ts_event=self.ts,
            exec_ref_id=exec_ref_id,
        )

    def new(self) -> ExecutionReport:
        return self._report(ExecType.NEW, OrdStatus.NEW)

    def reject(self) -> ExecutionReport:
        return self._report(ExecType.REJECTED, OrdStatus.REJECTED, leaves=0)

    def fill(self, qty: int, px: int, commission: int | None = 0) -> ExecutionReport:
        """An execution as FIX 4.2 reports it (Partial fill / Fill)."""
        self.cum += qty
        full = self.cum >= self.qty
        report = self._report(
            ExecType.FILL if full else ExecType.PARTIAL_FILL,
            OrdStatus.FILLED if full else OrdStatus.PARTIALLY_FILLED,
            last_qty=qty,
            last_px=px,
            commission=commission,
        )
        self.executions[report.exec_id] = qty
        return report

    def _status(self) -> OrdStatus:
        if self.cum == 0:
            return OrdStatus.NEW
        return OrdStatus.PARTIALLY_FILLED if self.cum < self.qty else OrdStatus.FILLED

    def trade(self, qty: int, px: int, commission: int | None = 0,
              status: OrdStatus | None = None) -> ExecutionReport:
        """An execution as FIX 4.4 reports it: ExecType Trade, OrdStatus partial or full (or
        the pending status, which takes precedence: `status`)."""
        self.cum += qty
        self.resting = None
        shown = status or self.pending or self._status()
        if self.cum >= self.qty or shown != self.pending:
            self.pending = None
        report = self._report(ExecType.TRADE, shown, last_qty=qty, last_px=px,
                              commission=commission)
        self.executions[report.exec_id] = qty
        return report

    def pending_new(self) -> ExecutionReport:
        return self._report(ExecType.PENDING_NEW, OrdStatus.PENDING_NEW, leaves=self.qty)

    def pending_cancel(self) -> ExecutionReport:
        self.pending = OrdStatus.PENDING_CANCEL
        return self._report(ExecType.PENDING_CANCEL, OrdStatus.PENDING_CANCEL,
                            leaves=self.leaves)

    def pending_replace(self) -> ExecutionReport:
        self.pending = OrdStatus.PENDING_REPLACE
        return self._report(ExecType.PENDING_REPLACE, OrdStatus.PENDING_REPLACE,
                            leaves=self.leaves)

    def done_for_day(self, good_till: bool = True) -> ExecutionReport:
        """Done for day: a good-till order keeps its leaves, a day order has none left."""
        self.pending = None
        self.resting = OrdStatus.DONE_FOR_DAY
        leaves = self.leaves if good_till else 0
        return self._report(ExecType.DONE_FOR_DAY, OrdStatus.DONE_FOR_DAY, leaves=leaves)

    def restate(self, qty: int) -> ExecutionReport:
        self.qty, self.resting = qty, None
        return self._report(ExecType.RESTATED, self.pending or self._status(),
                            leaves=self.leaves)

    def _after_bust(self) -> tuple[OrdStatus, int]:
        ended = self.resting in (OrdStatus.CANCELED, OrdStatus.EXPIRED)
        return (self.pending or self.resting or self._status(),
                0 if ended else self.qty - self.cum)

    def trade_cancel(self, ref: str) -> ExecutionReport:
        self.cum -= self.executions.pop(ref)
        shown, leaves = self._after_bust()
        return self._report(ExecType.TRADE_CANCEL, shown, exec_ref_id=ref, leaves=leaves)

    def trade_correct(self, ref: str, qty: int, px: int, commission: int | None = None
                      ) -> ExecutionReport:
        self.cum += qty - self.executions.pop(ref)
        shown, leaves = self._after_bust()
        report = self._report(ExecType.TRADE_CORRECT, shown, last_qty=qty, last_px=px,
                              commission=commission, exec_ref_id=ref, leaves=leaves)
        self.executions[report.exec_id] = qty
        return report

    @property
    def leaves(self) -> int:
        return max(self.qty - self.cum, 0)

    def cancel(self) -> ExecutionReport:
        self.pending, self.resting = None, OrdStatus.CANCELED
        return self._report(ExecType.CANCELED, OrdStatus.CANCELED, leaves=0)

    def expire(self) -> ExecutionReport:
        self.pending, self.resting = None, OrdStatus.EXPIRED
        return self._report(ExecType.EXPIRED, OrdStatus.EXPIRED, leaves=0)

    def replace(self, qty: int, limit_price: int | None = None) -> ExecutionReport:
        self.pending, self.resting = None, None
        self.qty = qty
        if limit_price is not None:
            self.limit_price = limit_price
        status = (
            OrdStatus.NEW
            if self.cum == 0
            else OrdStatus.PARTIALLY_FILLED
            if self.cum < qty
            else OrdStatus.FILLED
        )
        return self._report(ExecType.REPLACED, status)


def fill(
    side: Side,
    qty: int,
    px: int,
    commission: int = 0,
    *,
    exec_id: str = "f",
    symbol: str = "XYZ",
    account_id: str = "ACC",
    ts: int = T0,
) -> Fill:
    return Fill(exec_id, "o", account_id, symbol, side, qty, px, commission, ts)
