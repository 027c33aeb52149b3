"""Hand-made records for every wire schema, including nulls and decimal edge values."""

from __future__ import annotations

from typing import Any

from tapeflow.core.fixedpoint import MAX_UNITS
from tapeflow.core.models import (
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

T0 = 1_767_623_400_000_000  # 2026-01-05T14:30:00Z in microseconds
EDGE_UNITS = [0, 1, -1, MAX_UNITS, -MAX_UNITS, 12_345_678_901, 2**31, -(2**40)]


def edge_records() -> list[Any]:
    """One or more records per schema that exercise every optional field and decimal edge."""
    out: list[Any] = []
    for i, units in enumerate(EDGE_UNITS):
        out.append(Trade("AAPL", "XNAS", T0 + i, i, units, abs(units), None, ()))
        out.append(Trade("ÆØÅ 'x'; --", "X", 0, 2**62, units, 1, f"t{i}", ("@", "F", "T")))
        out.append(Quote("MSFT", "ARCX", T0 - i, i, units, 0, MAX_UNITS, units))
    out.append(ExecutionReport(
        "e1", "o1", None, "ACC-1", "AAPL", Side.BUY, OrderType.MARKET, ExecType.NEW,
        OrdStatus.NEW, 100 * 10**8, None, None, 0, None, 0, 100 * 10**8, None, None, None, T0))
    out.append(ExecutionReport(
        "e2", "o1", "c-1", "ACC-1", "AAPL", Side.SELL, OrderType.STOP_LIMIT, ExecType.PARTIAL_FILL,
        OrdStatus.PARTIALLY_FILLED, MAX_UNITS, -MAX_UNITS, 1, 40 * 10**8, 10_012_345_678,
        40 * 10**8, MAX_UNITS - 40 * 10**8, 10_012_345_678, 0, "no reason", T0 + 1))
    out.append(ExecutionReport(
        "e3", "o1", "c-1", "ACC-1", "AAPL", Side.SELL, OrderType.LIMIT, ExecType.TRADE_CORRECT,
        OrdStatus.DONE_FOR_DAY, 10 * 10**8, 10**8, None, 10**8, 10**8, 10**8, 9 * 10**8, None,
        None, None, T0 + 2, "e2"))
    for kind in CashKind:
        out.append(CashMovement(f"m-{kind}", "ACC-1", kind, MAX_UNITS, "USD", T0, None))
    out.append(CashMovement("m-x", "ACC-1", CashKind.FEE, 1, "EUR", 0, "monthly fee ÆØÅ"))
    for sev in Severity:
        out.append(RiskAlert(f"a-{sev}", "fat_finger", sev, None, None, T0, None, None, "m", "e1"))
    out.append(RiskAlert("a-x", "drawdown", Severity.CRITICAL, "ACC-1", "AAPL", T0, -MAX_UNITS,
                         MAX_UNITS, "drawdown 12% > 10%", "e2"))
    for unit in Unit:
        out.append(RiskAlert(f"a-{unit}", "r", Severity.INFO, "A", None, T0, 1, -1, "m", "e3",
                             unit))
    out.append(DeadLetter("md.trades", 3, 2**40, "bad_magic", "first byte 7", b"\x07\x00\xff", T0))
    out.append(DeadLetter("md.quotes", 0, 0, "too_short", "", b"", 0))
    return out
