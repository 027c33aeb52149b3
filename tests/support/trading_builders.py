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
        )

    def new(self) -> ExecutionReport:
        return self._report(ExecType.NEW, OrdStatus.NEW)

    def reject(self) -> ExecutionReport:
        return self._report(ExecType.REJECTED, OrdStatus.REJECTED, leaves=0)

    def fill(self, qty: int, px: int, commission: int | None = 0) -> ExecutionReport:
        self.cum += qty
        full = self.cum >= self.qty
        return self._report(
            ExecType.FILL if full else ExecType.PARTIAL_FILL,
            OrdStatus.FILLED if full else OrdStatus.PARTIALLY_FILLED,
            last_qty=qty,
            last_px=px,
            commission=commission,
        )

    def cancel(self) -> ExecutionReport:
        return self._report(ExecType.CANCELED, OrdStatus.CANCELED, leaves=0)

    def expire(self) -> ExecutionReport:
        return self._report(ExecType.EXPIRED, OrdStatus.EXPIRED, leaves=0)

    def replace(self, qty: int, limit_price: int | None = None) -> ExecutionReport:
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
