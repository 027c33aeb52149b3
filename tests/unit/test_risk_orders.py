"""Risk semantics of issue 13, through the account step: per-order incidents, buying power
of reducing orders, unvalued orders, the stop-limit collar, fills through the limit, reused
ClOrdIDs, units and decimal messages."""

from __future__ import annotations

import re
from dataclasses import replace

from tapeflow.core.models import OrderType, RiskAlert, Severity, Side, Unit
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingState,
    new_trading_state,
    on_execution,
)
from tapeflow.core.trading.positions import MarkPrice
from tests.support.trading_builders import T0, OrderSim, u

W, C, CLR = Severity.WARNING, Severity.CRITICAL, Severity.INFO
OFF = RiskLimits(max_order_qty=None, max_order_notional=None, price_collar_bps=None,
                 max_position_qty=None, max_leverage=None, max_daily_loss=None,
                 max_drawdown_bps=None, max_concentration_bps=None, max_gross_exposure=None,
                 max_turnover_notional=None, max_mark_age_us=None)
"""Every rule off; each test turns on the one it is about."""


def config(**limits: object) -> TradingConfig:
    return TradingConfig(limits=RiskLimitBook(replace(OFF, **limits)))  # type: ignore[arg-type]


def run(state: TradingState, cfg: TradingConfig, *reports: object,
        marks: dict[str, MarkPrice] | None = None) -> tuple[TradingState, list[RiskAlert]]:
    alerts: list[RiskAlert] = []
    for report in reports:
        state, out = on_execution(state, report, cfg, marks or {})  # type: ignore[arg-type]
        alerts += out.alerts
    return state, alerts


def rules(alerts: list[RiskAlert], rule: str) -> list[tuple[str | None, Severity]]:
    return [(a.source_event_id, a.severity) for a in alerts if a.rule == rule]


def test_every_fat_finger_order_alerts_even_after_the_first_is_cancelled() -> None:
    """Per-order checks are per order: a second oversized order on the same symbol alerts
    (today it raised nothing, the (account, symbol) incident being open or just cleared by
    a within-limits order)."""
    cfg = config(max_order_qty=u(100))
    first, second, third = (OrderSim(f"o{i}", qty=u(500)) for i in range(3))
    small = OrderSim("ok", qty=u(10))
    state, alerts = run(new_trading_state("ACC", u(10**6)), cfg, first.new(), second.new())
    assert rules(alerts, "order_size") == [("o0-x1", C), ("o1-x1", C)]
    state, alerts = run(state, cfg, small.new(), first.cancel(), third.new())
    # The small order raises nothing and clears nothing; the cancel closes o0's incident.
    assert rules(alerts, "order_size") == [("o0-x2", CLR), ("o2-x1", C)]
    assert {a.unit for a in alerts if a.rule == "order_size"} == {Unit.QUANTITY}
    # A replace within the limit clears that order's incident only.
    state, alerts = run(state, cfg, second.replace(u(50)))
    assert rules(alerts, "order_size") == [("o1-x2", CLR)]
    assert {k.scope for k in state.risk.levels} == {"o2"}


def test_a_sell_that_closes_a_long_consumes_no_buying_power() -> None:
    """Cash account (leverage 1), fully invested: selling the position must not raise a
    CRITICAL buying-power alert; selling more than held opens a short, which does."""
    cfg = config(max_leverage=u(1))
    buy = OrderSim("b", qty=u(1_000), limit_price=u(100))
    state, alerts = run(new_trading_state("ACC", u(100_000)), cfg, buy.new(),
                        buy.fill(u(1_000), u(100)))
    assert [a.severity for a in alerts if a.rule == "buying_power"] == [W]  # 100 % used
    close = OrderSim("s", qty=u(1_000), side=Side.SELL, limit_price=u(100))
    state, alerts = run(state, cfg, close.new())
    assert [a for a in alerts if a.rule == "buying_power"] == []
    flip = OrderSim("s2", qty=u(500), side=Side.SELL, limit_price=u(100))
    state, alerts = run(state, cfg, flip.new())
    # 1,500 to sell against a long of 1,000: 500 would open a short worth 50,000.
    (alert,) = [a for a in alerts if a.rule == "buying_power"]
    assert alert.severity == C and alert.observed == u(150_000) and alert.unit == Unit.MONEY


def test_an_order_that_cannot_be_valued_raises_its_own_alert() -> None:
    cfg = config(max_order_notional=u(10**6))
    market = OrderSim("m", qty=u(10), order_type=OrderType.MARKET, limit_price=None)
    state, alerts = run(new_trading_state("ACC", u(10**6)), cfg, market.new())
    (alert,) = [a for a in alerts if a.rule == "unvalued_order"]
    assert alert.severity == W and "cannot be valued" in alert.message
    # With a mark it can be valued: no such alert for another market order.
    other = OrderSim("m2", qty=u(10), order_type=OrderType.MARKET, limit_price=None)
    marks = {"XYZ": MarkPrice("XYZ", u(5), T0, "t")}
    state, alerts = run(state, cfg, other.new(), marks=marks)
    assert rules(alerts, "unvalued_order") == []
    _, alerts = run(state, cfg, market.cancel())
    assert rules(alerts, "unvalued_order") == [("m-x2", CLR)]


def test_the_collar_of_a_stop_limit_order_is_measured_from_its_stop() -> None:
    """A buy stop-limit, stop 100, limit 110, is 10 % through its trigger price: outside a
    5 % collar whatever the market does now; a sell stop-limit 2 % under its stop is within,
    though the mark is far above."""
    cfg = config(price_collar_bps=500)
    marks = {"XYZ": MarkPrice("XYZ", u(200), T0, "t")}
    far = OrderSim("f", qty=u(1), order_type=OrderType.STOP_LIMIT, stop_price=u(100),
                   limit_price=u(110))
    near = OrderSim("n", qty=u(1), side=Side.SELL, order_type=OrderType.STOP_LIMIT,
                    stop_price=u(50), limit_price=u(49))
    _, alerts = run(new_trading_state("ACC", u(10**6)), cfg, far.new(), near.new(),
                    marks=marks)
    (alert,) = [a for a in alerts if a.rule == "price_collar"]
    assert (alert.source_event_id, alert.severity, alert.unit) == ("f-x1", C, Unit.BPS)
    assert alert.observed == u(1_000) and alert.limit == u(500)
    assert "vs stop 100.00000000" in alert.message
    # A plain limit order is still measured from the mark.
    limit = OrderSim("l", qty=u(1), limit_price=u(220))
    _, alerts = run(new_trading_state("ACC", u(10**6)), cfg, limit.new(), marks=marks)
    assert rules(alerts, "price_collar") == [("l-x1", C)]


def test_a_fill_worse_than_the_limit_alerts_and_is_still_booked() -> None:
    buy = OrderSim("b", qty=u(10), limit_price=u(100))
    sell = OrderSim("s", qty=u(10), side=Side.SELL, limit_price=u(100))
    state, alerts = run(new_trading_state("ACC", u(10**6)), config(), buy.new(), sell.new(),
                        buy.fill(u(5), u(100)), buy.fill(u(5), u("100.01")),
                        sell.fill(u(5), u(100)), sell.fill(u(5), u("99.99")))
    got = [(a.source_event_id, a.severity, a.observed, a.limit, a.unit) for a in alerts
           if a.rule == "fill_through_limit"]
    assert got == [("b-x3", C, u("100.01"), u(100), Unit.MONEY),
                   ("s-x3", C, u("99.99"), u(100), Unit.MONEY)]
    assert state.account.positions["XYZ"].qty == 0  # booked all the same


def test_a_second_live_order_with_the_same_client_order_id_alerts() -> None:
    a = OrderSim("a", qty=u(1))
    b = OrderSim("b", qty=u(1))
    c = OrderSim("c", qty=u(1))
    for sim in (a, b, c):
        sim.ids.clear()
    reused = [r._replace(client_order_id="SAME") for r in (a.new(), b.new())]
    state, alerts = run(new_trading_state("ACC", u(10**6)), config(), *reused)
    (alert,) = [x for x in alerts if x.rule == "client_order_id_reused"]
    assert alert.severity == W and alert.source_event_id == "b-x1" and "live order a" in \
        alert.message
    # a ends; b still holds the ClOrdID: a third order reusing it alerts (naming b).
    state, alerts = run(state, config(), a.cancel()._replace(client_order_id="SAME"),
                        c.new()._replace(client_order_id="SAME"))
    (alert,) = [x for x in alerts if x.rule == "client_order_id_reused"]
    assert "live order b" in alert.message
    # Once both have ended the ClOrdID is free again.
    state, alerts = run(state, config(), b.cancel()._replace(client_order_id="SAME"),
                        c.cancel()._replace(client_order_id="SAME"),
                        OrderSim("d", qty=u(1)).new()._replace(client_order_id="SAME"))
    assert [x for x in alerts if x.rule == "client_order_id_reused"] == []


SCALE8 = re.compile(r"\d{9,}")
"""A run of nine or more digits: a scale-8 integer printed as such (a decimal shows a dot)."""


def test_alerts_say_their_unit_and_print_decimals() -> None:
    cfg = TradingConfig(limits=RiskLimitBook(RiskLimits(max_order_qty=u(100),
                                                        max_position_qty=u(100))))
    big = OrderSim("big", qty=u(1_500))
    state, alerts = run(new_trading_state("ACC", u(10**6)), cfg, big.new(),
                        big.fill(u(1_000), u(1)))
    gap = big.fill(u(10), u(1))._replace(cum_qty=u(1_600), leaves_qty=0)
    _, more = run(state, cfg, gap)
    units = {a.rule: a.unit for a in alerts}
    assert units["order_size"] == Unit.QUANTITY and units["position_limit"] == Unit.QUANTITY
    (invalid,) = more
    assert invalid.unit is None and "cum_qty 1600.00000000" in invalid.message
    for alert in (*alerts, *more):
        assert not SCALE8.search(alert.message), alert.message
