"""Every risk rule through the edge trigger: breach, no breach, escalation, no repeat,
clear, re-breach. Each rule is driven to a given percentage of its limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import OrderType, Severity, Side, Unit
from tapeflow.core.risk.feed import check_stale_marks
from tapeflow.core.risk.levels import Levels, Reading, apply_readings
from tapeflow.core.risk.limits import BPS, RiskLimits
from tapeflow.core.risk.rules import (
    check_buying_power,
    check_concentration,
    check_daily_loss,
    check_drawdown,
    check_gross_exposure,
    check_order_size,
    check_position_limit,
    check_price_collar,
    check_turnover,
    turnover_add,
    turnover_prune,
)
from tapeflow.core.trading.orders import OrderState, transition
from tapeflow.core.trading.positions import AccountState, MarkPrice, apply_fill, new_account
from tests.support.trading_builders import T0, OrderSim, fill, u

L = RiskLimits()
COLLAR_BPS = 500
assert L.price_collar_bps == COLLAR_BPS
EQUITY = u(1_000_000)


def order(qty: int, limit_price: int | None, side: Side = Side.BUY) -> OrderState:
    sim = OrderSim("o", qty=ONE, side=side, limit_price=u(1))
    if limit_price is None:
        sim.order_type = OrderType.MARKET
    state, _ = transition(None, sim.new())
    assert state is not None
    # Zero quantities and prices are refused by the state machine; rules may still see
    # any value, so set them directly.
    return replace(state, order_qty=qty, leaves_qty=qty, limit_price=limit_price)


def pct(limit: int | None, p: int) -> int:
    assert limit is not None
    return limit * p // 100


def holding(value: int, cash: int = 0) -> AccountState:
    """An account holding one unit of XYZ worth `value`, plus `cash` after buying it."""
    account, _ = apply_fill(new_account("ACC", cash + value), fill(Side.BUY, ONE, value))
    return account


Builder = Callable[[int, str], list[Reading]]

BUILDERS: dict[str, Builder] = {
    "order_size": lambda p, s: check_order_size(L, order(pct(L.max_order_qty, p), 1), None, s),
    "order_notional": lambda p, s: check_order_size(
        L, order(ONE, pct(L.max_order_notional, p)), None, s
    ),
    "price_collar": lambda p, s: check_price_collar(
        L, order(ONE, u(100) + pct(u(100) * COLLAR_BPS // BPS, p)), u(100), s
    ),
    "position_limit": lambda p, s: check_position_limit(
        L,
        "ACC",
        "XYZ",
        position_qty=-pct(L.max_position_qty, p),
        open_buy_qty=0,
        open_sell_qty=0,
        source=s,
    ),
    "buying_power": lambda p, s: check_buying_power(
        L, new_account("ACC", EQUITY), pct(EQUITY * ONE, p), s
    ),
    "daily_loss": lambda p, s: check_daily_loss(
        L,
        replace(
            new_account("ACC", EQUITY),
            day_start_equity_16=EQUITY * ONE + pct(u(50_000) * ONE, p),
        ),
        s,
    ),
    "drawdown": lambda p, s: check_drawdown(
        L,
        replace(
            new_account("ACC", EQUITY - pct(EQUITY * 2_000 // BPS, p)),
            peak_equity_16=EQUITY * ONE,
        ),
        s,
    ),
    "concentration": lambda p, s: check_concentration(
        L,
        holding(pct(EQUITY * 5_000 // BPS, p), EQUITY - pct(EQUITY * 5_000 // BPS, p)),
        "XYZ",
        s,
    ),
    "gross_exposure": lambda p, s: check_gross_exposure(
        L, holding(pct(L.max_gross_exposure, p)), s
    ),
    "turnover": lambda p, s: check_turnover(
        L, "ACC", "XYZ", ((T0, pct(u(2_000_000) * ONE, p)),), s
    ),
    "stale_market_data": lambda p, s: check_stale_marks(
        L,
        holding(u(100)),
        {"XYZ": MarkPrice("XYZ", u(100), T0, s)},
        T0 + pct(L.max_mark_age_us, p),
    ),
}

W, C, CLR = Severity.WARNING, Severity.CRITICAL, Severity.INFO
SCRIPT: list[tuple[int, Severity | None]] = [
    (50, None),  # within
    (90, W),  # breach at the warning tier
    (85, None),  # still warning: no repeat
    (120, C),  # escalation
    (130, None),  # still critical: no repeat
    (90, None),  # back to the warning tier: the incident stays open, no alert
    (10, CLR),  # clears, with an INFO alert
    (10, None),  # still clear
    (95, W),  # re-breach alerts again
    (95, None),
    (200, C),
    (0, CLR),
]


def test_every_rule_has_a_builder() -> None:
    assert len(BUILDERS) == 11


@pytest.mark.parametrize("rule", sorted(BUILDERS))
def test_rule_edge_triggers_through_the_script(rule: str) -> None:
    levels: Levels = {}
    seen_ids: set[str] = set()
    for step, (p, expected) in enumerate(SCRIPT):
        readings = [r for r in BUILDERS[rule](p, f"ev{step}") if r.key.rule == rule]
        assert len(readings) == 1, (rule, p)
        levels, alerts = apply_readings(levels, readings, T0 + step)
        got = [a.severity for a in alerts]
        assert got == ([] if expected is None else [expected]), (rule, step, p)
        for alert in alerts:
            assert alert.rule == rule and alert.source_event_id == f"ev{step}"
            assert alert.alert_id not in seen_ids
            seen_ids.add(alert.alert_id)
            if alert.severity != CLR:
                assert alert.limit is not None and alert.observed is not None
            else:
                assert alert.message.startswith("cleared")
    assert levels == {}


@pytest.mark.parametrize("rule", sorted(BUILDERS))
def test_exactly_at_the_limit_is_only_a_warning(rule: str) -> None:
    (reading,) = [r for r in BUILDERS[rule](100, "x") if r.key.rule == rule]
    assert reading.severity == W
    (reading,) = [r for r in BUILDERS[rule](80, "x") if r.key.rule == rule]
    assert reading.severity is None


def test_price_collar_ignores_passive_prices() -> None:
    far_below = order(ONE, u(50))
    far_above_sell = order(ONE, u(150), Side.SELL)
    for o in (far_below, far_above_sell):
        (reading,) = check_price_collar(L, o, u(100), "s")
        assert reading.severity is None
    (reading,) = check_price_collar(L, order(ONE, u(50), Side.SELL), u(100), "s")
    assert reading.severity == C


def test_price_collar_and_notional_need_a_price() -> None:
    market = order(ONE, None)
    assert check_price_collar(L, market, None, "s") == []
    # An order that cannot be valued raises its own alert instead of passing silently.
    size, unvalued = check_order_size(L, market, None, "s")
    assert size.key.rule == "order_size" and unvalued.key.rule == "unvalued_order"
    assert unvalued.severity == W and unvalued.key.scope == market.order_id
    with_mark = check_order_size(L, market, u(2_000_000), "s")
    assert [r.key.rule for r in with_mark] == ["order_size", "unvalued_order", "order_notional"]
    assert with_mark[1].severity is None and with_mark[2].severity == C


def test_position_limit_counts_open_orders_on_the_worse_side() -> None:
    limit = L.max_position_qty
    assert limit is not None
    (r,) = check_position_limit(
        L, "A", "XYZ", position_qty=limit // 2, open_buy_qty=limit, open_sell_qty=0, source="s"
    )
    assert r.severity == C and r.observed == limit * 3 // 2
    (r,) = check_position_limit(
        L, "A", "XYZ", position_qty=limit // 2, open_buy_qty=0, open_sell_qty=limit, source="s"
    )
    assert r.severity is None  # selling the long down to -limit/2 is within


def test_symbol_position_override() -> None:
    limits = replace(L, symbol_position_qty=(("XYZ", u(10)),))
    (r,) = check_position_limit(
        limits, "A", "XYZ", position_qty=u(11), open_buy_qty=0, open_sell_qty=0, source="s"
    )
    assert r.severity == C and r.limit == u(10)
    (r,) = check_position_limit(
        limits, "A", "ABC", position_qty=u(11), open_buy_qty=0, open_sell_qty=0, source="s"
    )
    assert r.severity is None


def test_concentration_with_no_equity_is_critical() -> None:
    account, _ = apply_fill(new_account("ACC", 0), fill(Side.BUY, ONE, u(100)))
    account = replace(account, cash_16=-u(200) * ONE)
    (r,) = check_concentration(L, account, "XYZ", "s")
    assert r.severity == C and r.observed is None


def test_drawdown_without_positive_peak_is_within() -> None:
    (r,) = check_drawdown(L, new_account("ACC", 0), "s")
    assert r.severity is None


def test_disabled_limits_never_breach() -> None:
    off = RiskLimits(
        max_order_qty=None,
        max_daily_loss=None,
        max_leverage=None,
        max_mark_age_us=None,
        max_concentration_bps=None,
    )
    assert check_order_size(off, order(u(10**9), 1), None, "s")[0].severity is None
    lossy = replace(new_account("A", 0), day_start_equity_16=u(10**9) * ONE)
    assert check_daily_loss(off, lossy, "s")[0].severity is None
    assert check_buying_power(off, new_account("A"), u(10**9), "s") == []
    assert check_stale_marks(off, holding(u(1)), {}, T0 + 10**12) == []
    assert check_concentration(off, holding(u(1)), "XYZ", "s")[0].severity is None


def test_stale_counts_from_open_without_any_mark_and_clears_when_flat() -> None:
    account = holding(u(100))
    age = (L.max_mark_age_us or 0) + 1
    (r,) = check_stale_marks(L, account, {}, T0 + age)
    assert r.severity == C and r.source_event_id == f"open:ACC:XYZ:{T0}"
    flat, _ = apply_fill(account, fill(Side.SELL, ONE, u(100), ts=T0 + 1))
    (r,) = check_stale_marks(L, flat, {}, T0 + 10 * age)
    assert r.severity is None


def test_turnover_window_buckets_time_but_not_money() -> None:
    limits = replace(L, turnover_window_us=100, turnover_buckets=10)  # 10 us buckets
    w: tuple[tuple[int, int], ...] = ()
    for t in range(0, 100, 3):  # 34 fills, 3 us apart
        w = turnover_add(w, T0 + t, 10, limits)
    assert len(w) == 10 and sum(n for _, n in w) == 340  # bounded, nothing lost
    assert w[0] == (T0, 40) and w[-1] == (T0 + 90, 40)  # fills at 0,3,6,9 / 90..99
    # The first bucket [T0, T0+10) counts until the window start passes its end.
    assert turnover_prune(w, T0 + 109, limits) == w
    assert turnover_prune(w, T0 + 110, limits) == w[1:]
    assert turnover_prune(w, T0 + 50, limits) is w
    assert turnover_add(w, T0 + 500, 7, limits) == ((T0 + 500, 7),)
    # A late fill lands in its own bucket, in order.
    late = turnover_add(((T0 + 20, 1), (T0 + 40, 2)), T0 + 31, 5, limits)
    assert late == ((T0 + 20, 1), (T0 + 30, 5), (T0 + 40, 2))


def test_turnover_window_memory_is_bounded_by_buckets() -> None:
    w: tuple[tuple[int, int], ...] = ()
    for t in range(0, 10 * L.turnover_window_us, 7_919):
        w = turnover_add(w, T0 + t, 1, L)
        assert len(w) <= L.turnover_buckets + 1


UNITS = {
    "order_size": Unit.QUANTITY, "order_notional": Unit.MONEY, "price_collar": Unit.BPS,
    "position_limit": Unit.QUANTITY, "buying_power": Unit.MONEY, "daily_loss": Unit.MONEY,
    "drawdown": Unit.BPS, "concentration": Unit.BPS, "gross_exposure": Unit.MONEY,
    "turnover": Unit.MONEY, "stale_market_data": Unit.SECONDS,
}


@pytest.mark.parametrize("rule", sorted(BUILDERS))
def test_every_rule_says_the_unit_of_its_numbers(rule: str) -> None:
    """observed and limit carry a unit: the alert says it (RiskAlert.unit)."""
    (reading,) = [r for r in BUILDERS[rule](120, "x") if r.key.rule == rule]
    assert reading.unit == UNITS[rule]
    _, (alert,) = apply_readings({}, [reading], T0)
    assert alert.unit == UNITS[rule] and alert.observed is not None
