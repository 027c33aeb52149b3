"""One account's trading, run through the real core, as input for the Postgres sink tests:
orders that are acknowledged, filled, cancelled; a duplicate; an invalid report with its
alert; marks. Shared by the unit tests of the mappers and the integration tests of the sink."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import ExecutionReport
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingOutput,
    new_trading_state,
    on_execution,
    on_mark,
)
from tapeflow.core.trading.positions import MarkPrice
from tests.support.trading_builders import T0, OrderSim


class Step(NamedTuple):
    output: TradingOutput
    report: ExecutionReport | None


def scenario(account: str = "ACC-1", symbol: str = "XYZ", ids: str = "") -> Iterator[Step]:
    """Steps in event order; every kind of row appears at least once. `ids` prefixes the order
    ids (two scenarios in one store need distinct orders)."""
    config = TradingConfig(RiskLimitBook(RiskLimits(max_order_qty=500 * ONE)))
    state = new_trading_state(account, cash=1_000_000 * ONE)
    marks: dict[str, MarkPrice] = {}
    a = OrderSim(f"{ids}O1", 300 * ONE, account_id=account, symbol=symbol)
    b = OrderSim(f"{ids}O2", 900 * ONE, account_id=account, symbol=symbol, ts=T0 + 10_000_000)
    acked = a.new()
    first_fill = a.fill(100 * ONE, to_units("100.12345678"), to_units("0.5"))
    last_fill = a.fill(200 * ONE, to_units("100.5"))
    # first_fill again: a duplicate. O2 is bigger than max_order_qty: an alert.
    reports = [acked, first_fill, last_fill, first_fill, b.new(), b.cancel()]
    for report in reports:
        state, out = on_execution(state, report, config, marks)
        yield Step(out, report)
    ghost = OrderSim(f"{ids}GHOST", ONE, account_id=account, symbol=symbol).fill(ONE, 100 * ONE)
    state, out = on_execution(state, ghost, config, marks)  # unknown order: invalid + alert
    yield Step(out, ghost)
    for n, px in enumerate(("101", "99.99999999", "102.5")):
        mark = MarkPrice(symbol, to_units(px), T0 + 20_000_000 + n * 1_000_000, f"m{n}")
        marks[symbol] = mark
        state, out = on_mark(state, mark, config, marks)
        yield Step(out, None)
