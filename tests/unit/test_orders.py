"""The FIX order state machine: every edge of the table, every pair outside it, and the
consistency, duplicate and retention rules."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import pytest

from tapeflow.core.models import ExecType, ExecutionReport, OrderType, OrdStatus, Side
from tapeflow.core.trading import order_state as orders_module
from tapeflow.core.trading.order_book import (
    OrderBook,
    OrderRetention,
    apply_execution,
    evict,
    open_quantities,
)
from tapeflow.core.trading.orders import (
    FILL_TYPES,
    TRANSITIONS,
    Applied,
    Duplicate,
    Invalid,
    transition,
)
from tests.support.trading_builders import OrderSim, u

UNREACHABLE = (
    OrdStatus.PENDING_CANCEL,
    OrdStatus.PENDING_REPLACE,
    OrdStatus.REPLACED,
)
"""Statuses an order never holds: a pending request is `OrderState.pending` beside the
status, and a replaced order goes on as NEW, PARTIALLY_FILLED or FILLED."""


def apply_ok(book: OrderBook, report: ExecutionReport) -> OrderBook:
    book, outcome = apply_execution(book, report)
    assert isinstance(outcome, Applied), outcome
    return book


def order_in(status: OrdStatus | None) -> tuple[OrderBook, OrderSim]:
    """A book holding order o1 (qty 100) in `status`, and the OMS stand-in that made it."""
    sim = OrderSim("o1", qty=u(100))
    book = OrderBook()
    if status is None:
        return book, sim
    if status == OrdStatus.REJECTED:
        return apply_ok(book, sim.reject()), sim
    if status == OrdStatus.PENDING_NEW:
        return apply_ok(book, sim.pending_new()), sim
    book = apply_ok(book, sim.new())
    if status in (OrdStatus.PARTIALLY_FILLED, OrdStatus.CANCELED, OrdStatus.EXPIRED,
                  OrdStatus.DONE_FOR_DAY):
        book = apply_ok(book, sim.fill(u(30), u(100)))
    if status == OrdStatus.FILLED:
        book = apply_ok(book, sim.fill(u(100), u(100)))
    elif status == OrdStatus.CANCELED:
        book = apply_ok(book, sim.cancel())
    elif status == OrdStatus.EXPIRED:
        book = apply_ok(book, sim.expire())
    elif status == OrdStatus.DONE_FOR_DAY:
        book = apply_ok(book, sim.done_for_day(good_till=True))
    elif status in UNREACHABLE:
        # No report leads here; forge it to prove the table refuses everything from it.
        book = OrderBook(live={"o1": replace(book.live["o1"], status=status)})
    order = book.get("o1")
    assert order is not None and order.status == status
    return book, sim


def report_for(sim: OrderSim, exec_type: ExecType) -> ExecutionReport:
    """A report of `exec_type` that is consistent with the order's quantities and would
    be applied if the table allowed the edge; fills always advance cum_qty."""
    if exec_type == ExecType.NEW:
        return sim.new()
    if exec_type == ExecType.PENDING_NEW:
        return sim.pending_new()
    if exec_type == ExecType.REJECTED:
        return sim.reject()
    if exec_type == ExecType.TRADE:
        return sim.trade(min(u(10), sim.leaves) or u(10), u(99))
    if exec_type == ExecType.PENDING_CANCEL:
        return sim.pending_cancel()
    if exec_type == ExecType.PENDING_REPLACE:
        return sim.pending_replace()
    if exec_type == ExecType.DONE_FOR_DAY:
        return sim.done_for_day()
    if exec_type == ExecType.RESTATED:
        return sim.restate(u(120))
    ref = next(iter(sim.executions), "none")
    if exec_type == ExecType.TRADE_CANCEL:
        if ref == "none":
            return sim._report(ExecType.TRADE_CANCEL, OrdStatus.NEW, exec_ref_id=ref)
        return sim.trade_cancel(ref)
    if exec_type == ExecType.TRADE_CORRECT:
        if ref == "none":
            return sim._report(ExecType.TRADE_CORRECT, OrdStatus.NEW, exec_ref_id=ref,
                               last_qty=u(5), last_px=u(98))
        return sim.trade_correct(ref, u(5), u(98))
    if exec_type == ExecType.CANCELED:
        return sim.cancel()
    if exec_type == ExecType.EXPIRED:
        return sim.expire()
    if exec_type == ExecType.REPLACED:
        return sim.replace(u(120), u(101))
    if exec_type == ExecType.PARTIAL_FILL:
        sim.cum += u(10)
        return sim._report(
            ExecType.PARTIAL_FILL, OrdStatus.PARTIALLY_FILLED, last_qty=u(10), last_px=u(99)
        )
    last = sim.qty - sim.cum if sim.qty > sim.cum else u(10)
    sim.cum += last
    return sim._report(ExecType.FILL, OrdStatus.FILLED, last_qty=last, last_px=u(99))


def test_table_is_exactly_the_documented_lifecycle() -> None:
    """FIX 4.4 Appendix D: the edges the order state change matrices show (order_table)."""
    working = {ExecType.TRADE, ExecType.PARTIAL_FILL, ExecType.FILL, ExecType.CANCELED,
               ExecType.EXPIRED, ExecType.REPLACED, ExecType.RESTATED,
               ExecType.PENDING_CANCEL, ExecType.PENDING_REPLACE, ExecType.DONE_FOR_DAY}
    corrections = {ExecType.TRADE_CANCEL, ExecType.TRADE_CORRECT}
    expected: set[tuple[OrdStatus | None, ExecType]] = {
        (None, ExecType.NEW),
        (None, ExecType.PENDING_NEW),
        (None, ExecType.REJECTED),
        (OrdStatus.PENDING_NEW, ExecType.NEW),
        (OrdStatus.PENDING_NEW, ExecType.REJECTED),
        (OrdStatus.FILLED, ExecType.PENDING_REPLACE),
        (OrdStatus.FILLED, ExecType.REPLACED),
    }
    expected |= {(OrdStatus.NEW, e) for e in working}
    expected |= {(OrdStatus.PARTIALLY_FILLED, e) for e in working | corrections}
    expected |= {(OrdStatus.DONE_FOR_DAY, e)
                 for e in (working - {ExecType.DONE_FOR_DAY}) | corrections}
    expected |= {(s, e) for s in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.EXPIRED)
                 for e in corrections}
    assert set(TRANSITIONS) == expected


@pytest.mark.parametrize(("status", "exec_type"), sorted(TRANSITIONS, key=str))
def test_every_allowed_edge_applies(status: OrdStatus | None, exec_type: ExecType) -> None:
    book, sim = order_in(status)
    before = book.get("o1")
    report = report_for(sim, exec_type)
    after_book, outcome = apply_execution(book, report)
    assert isinstance(outcome, Applied), outcome
    order = outcome.order
    assert order.status in TRANSITIONS[(status, exec_type)].results
    assert after_book.get("o1") == order
    assert order.version == (1 if before is None else before.version + 1)
    assert order.exec_ids[-1] == report.exec_id
    assert order.cum_qty == report.cum_qty
    assert order.leaves_qty == report.leaves_qty
    if exec_type in FILL_TYPES:
        assert outcome.fill is not None
        assert (outcome.fill.qty, outcome.fill.price) == (report.last_qty, report.last_px)
    else:
        assert outcome.fill is None
    assert (order.order_id in after_book.terminal) == order.is_terminal


ALL_PAIRS = [(s, e) for s in (None, *OrdStatus) for e in ExecType]
REFUSED = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


def test_cross_product_is_covered() -> None:
    assert len(REFUSED) + len(TRANSITIONS) == (len(OrdStatus) + 1) * len(ExecType)
    assert len(REFUSED) > 60


@pytest.mark.parametrize(("status", "exec_type"), REFUSED, ids=str)
def test_every_other_pair_is_refused(status: OrdStatus | None, exec_type: ExecType) -> None:
    book, sim = order_in(status)
    report = report_for(sim, exec_type)
    after, outcome = apply_execution(book, report)
    assert isinstance(outcome, Invalid), outcome
    assert after is book
    if status is None:
        assert "unknown order" in outcome.reason
    else:
        assert "not allowed in status" in outcome.reason


def test_lifecycle_new_partial_replace_fill() -> None:
    sim = OrderSim("o1", qty=u(100), limit_price=u(50))
    book = apply_ok(OrderBook(), sim.new())
    book = apply_ok(book, sim.fill(u(40), u(50), commission=u("0.2")))
    book = apply_ok(book, sim.replace(u(60), u("50.5")))
    order = book.get("o1")
    assert order is not None
    assert (order.order_qty, order.cum_qty, order.leaves_qty) == (u(60), u(40), u(20))
    assert order.limit_price == u("50.5") and order.status == OrdStatus.PARTIALLY_FILLED
    book, outcome = apply_execution(book, sim.fill(u(20), u(51)))
    assert isinstance(outcome, Applied) and outcome.order.status == OrdStatus.FILLED
    assert outcome.order.avg_px == u("50.33333333")  # (40*50 + 20*51) / 60, half-even
    assert outcome.order.version == 4
    assert "o1" in book.terminal and "o1" not in book.live


def test_replace_down_to_cum_fills_the_order() -> None:
    book, sim = order_in(OrdStatus.PARTIALLY_FILLED)
    book, outcome = apply_execution(book, sim.replace(u(30)))
    assert isinstance(outcome, Applied) and outcome.order.status == OrdStatus.FILLED
    assert outcome.order.leaves_qty == 0 and book.live == {}


def test_legacy_replaced_ord_status_is_accepted_but_order_stays_live() -> None:
    book, sim = order_in(OrdStatus.NEW)
    report = sim.replace(u(80))._replace(ord_status=OrdStatus.REPLACED)
    _, outcome = apply_execution(book, report)
    assert isinstance(outcome, Applied) and outcome.order.status == OrdStatus.NEW


def _bad(sim: OrderSim, **changes: Any) -> ExecutionReport:
    return sim.fill(u(10), u(100))._replace(**changes)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: s.fill(u(120), u(100)), "exceeds order_qty"),
        (lambda s: _bad(s, cum_qty=s.cum + u(5)), "cum_qty gap"),
        (lambda s: _bad(s, leaves_qty=u(1)), "leaves_qty"),
        (lambda s: _bad(s, ord_status=OrdStatus.NEW), "ord_status"),
        (lambda s: _bad(s, last_px=None), "last_px"),
        (lambda s: _bad(s, last_px=0), "last_px"),
        (lambda s: _bad(s, side=Side.SELL), "side differs"),
        (lambda s: _bad(s, symbol="OTHER"), "symbol differs"),
        (lambda s: _bad(s, account_id="B"), "account_id differs"),
        (lambda s: _bad(s, order_qty=u(200), leaves_qty=u(170)), "changes order_qty"),
        (lambda s: _bad(s, last_qty=-u(1)), "negative quantity"),
        (
            lambda s: s.fill(u(70), u(100))._replace(
                exec_type=ExecType.PARTIAL_FILL, ord_status=OrdStatus.PARTIALLY_FILLED
            ),
            "completes the order",
        ),
        (lambda s: _bad(s, exec_type=ExecType.FILL, ord_status=OrdStatus.FILLED), "leaves"),
        (lambda s: s.replace(u(20)), "below cum_qty"),
        (lambda s: s.cancel()._replace(leaves_qty=u(1)), "leaves_qty"),
        (lambda s: s.cancel()._replace(cum_qty=u(50)), "changes cum_qty"),
        (lambda s: s.expire()._replace(ord_status=OrdStatus.CANCELED), "ord_status"),
        (lambda s: s.replace(u(90))._replace(limit_price=None), "limit_price"),
    ],
)
def test_inconsistent_reports_are_refused(make: object, reason: str) -> None:
    book, sim = order_in(OrdStatus.PARTIALLY_FILLED)
    assert callable(make)
    after, outcome = apply_execution(book, make(sim))
    assert isinstance(outcome, Invalid), outcome
    assert reason in outcome.reason
    assert after is book


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"cum_qty": 1, "leaves_qty": u(100) - 1}, "non-zero cum_qty"),
        ({"leaves_qty": u(1)}, "leaves_qty"),
        ({"ord_status": OrdStatus.PENDING_NEW}, "ord_status"),
        ({"order_type": OrderType.STOP_LIMIT}, "stop_price"),
        ({"order_qty": 0, "leaves_qty": 0}, "non-positive order_qty"),
    ],
)
def test_inconsistent_new_is_refused(changes: dict[str, Any], reason: str) -> None:
    _, outcome = apply_execution(OrderBook(), OrderSim("o1", qty=u(100)).new()._replace(**changes))
    assert isinstance(outcome, Invalid) and reason in outcome.reason


def test_fill_for_unknown_order_is_invalid_and_creates_nothing() -> None:
    sim = OrderSim("ghost", qty=u(10))
    book, outcome = apply_execution(OrderBook(), sim.fill(u(10), u(100)))
    assert isinstance(outcome, Invalid) and "unknown order" in outcome.reason
    assert book.get("ghost") is None


def test_repeated_exec_id_is_a_duplicate_whatever_the_state() -> None:
    book, sim = order_in(OrdStatus.NEW)
    first = sim.fill(u(30), u(100))
    book = apply_ok(book, first)
    for report in (first, first._replace(ts_event=first.ts_event + 5)):
        after, outcome = apply_execution(book, report)
        assert isinstance(outcome, Duplicate) and after is book
    new_report = OrderSim("o1", qty=u(100)).new()  # exec id o1-x1, seen at creation
    after, outcome = apply_execution(book, new_report)
    assert isinstance(outcome, Duplicate) and after is book


def test_new_exec_id_whose_cum_does_not_advance_is_invalid_even_after_fill() -> None:
    """A redelivery repeats its exec_id; a new exec_id with last_qty > 0 that does not move
    cum_qty is inconsistent: invalid (alerted), not a silent duplicate."""
    book, sim = order_in(OrdStatus.FILLED)
    resent = sim._report(
        ExecType.FILL, OrdStatus.FILLED, last_qty=u(100), last_px=u(100), cum=u(100)
    )
    after, outcome = apply_execution(book, resent)
    assert isinstance(outcome, Invalid) and "does not advance" in outcome.reason
    assert "100.00000000" in outcome.reason and "10000000000" not in outcome.reason
    assert after is book


def test_exec_id_memory_is_bounded_and_old_fills_still_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(orders_module, "MAX_EXEC_IDS_PER_ORDER", 3)
    sim = OrderSim("o1", qty=u(100))
    book = apply_ok(OrderBook(), sim.new())
    fills = [sim.fill(u(1), u(100)) for _ in range(5)]
    for f in fills:
        book = apply_ok(book, f)
    order = book.get("o1")
    assert order is not None and order.exec_ids == tuple(f.exec_id for f in fills[-3:])
    after, outcome = apply_execution(book, fills[0])  # forgotten exec_id, cum 1 < 5
    assert isinstance(outcome, Duplicate) and after is book


def test_transition_refuses_a_report_for_another_order() -> None:
    book, _ = order_in(OrdStatus.NEW)
    order = book.get("o1")
    other = OrderSim("o2", qty=u(1)).new()
    same, outcome = transition(order, other)
    assert isinstance(outcome, Invalid) and same is order


def test_terminal_orders_are_evicted_by_count_oldest_first() -> None:
    book = OrderBook(retention=OrderRetention(max_terminal=2))
    sims = [OrderSim(f"o{i}", qty=u(1)) for i in range(3)]
    for sim in sims:
        book = apply_ok(book, sim.new())
    for sim in sims:
        book = apply_ok(book, sim.cancel())
    assert list(book.terminal) == ["o1", "o2"]
    _, outcome = apply_execution(book, sims[0].fill(u(1), u(100)))
    assert isinstance(outcome, Invalid) and "unknown order" in outcome.reason


def test_terminal_orders_are_evicted_by_event_time() -> None:
    ttl = 10_000_000
    book = OrderBook(retention=OrderRetention(terminal_ttl_us=ttl))
    a, b = OrderSim("a", qty=u(1)), OrderSim("b", qty=u(1))
    book = apply_ok(apply_ok(book, a.new()), a.cancel())
    ended = book.terminal["a"].ts_last
    b.ts = ended + ttl - 2_000  # next report lands 1 ms inside the TTL
    book = apply_ok(book, b.new())
    assert "a" in book.terminal
    assert "a" not in evict(book, ended + ttl + 1).terminal
    assert evict(book, ended + ttl - 1) is book
    b.ts = ended + ttl + 10
    book = apply_ok(book, b.cancel())
    assert list(book.terminal) == ["b"]


def test_live_orders_are_never_evicted() -> None:
    book = OrderBook(retention=OrderRetention(max_terminal=0, terminal_ttl_us=0))
    sim = OrderSim("live", qty=u(5))
    book = apply_ok(book, sim.new())
    assert evict(book, 10**18).live.keys() == {"live"}


def test_open_quantities_sum_leaves_by_side() -> None:
    buy = OrderSim("b", qty=u(10))
    sell = OrderSim("s", qty=u(4), side=Side.SELL)
    other = OrderSim("x", qty=u(7), symbol="OTHER")
    book = OrderBook()
    for r in (buy.new(), sell.new(), other.new()):
        book = apply_ok(book, r)
    book = apply_ok(book, buy.fill(u(3), u(100)))
    assert open_quantities(book, "ACC", "XYZ") == (u(7), u(4))
    book = apply_ok(book, sell.cancel())
    assert open_quantities(book, "ACC", "XYZ") == (u(7), 0)


def test_book_pickles_round_trip() -> None:
    book, _ = order_in(OrdStatus.PARTIALLY_FILLED)
    book = apply_ok(book, OrderSim("z", qty=u(1)).reject())
    clone = pickle.loads(pickle.dumps(book))
    assert clone == book and clone.get("o1") == book.get("o1")
