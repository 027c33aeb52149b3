"""The synthetic order flow: FIX 4.4 reports per order, priced off the market, named by the run."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace

import pytest

from sources.synthetic import Fault, Market, generate_market
from tapeflow.core.fixedpoint import ONE, div_round
from tapeflow.core.models import ExecType, ExecutionReport, OrdStatus, Side, Trade
from tests.support.synthetic_spec import SPEC


@pytest.fixture(scope="module")
def market() -> Market:
    return generate_market(SPEC)


# -- execution reports ---------------------------------------------------------------------


def test_execution_reports_follow_fix_44_per_order(market: Market) -> None:
    dup_positions = {lab.pos for lab in market.fault_labels() if lab.fault == Fault.DUPLICATE_EXEC}
    orders: dict[str, list[ExecutionReport]] = defaultdict(list)
    for lab in market.labels:
        er = market.record(lab.pos)
        if isinstance(er, ExecutionReport) and lab.pos not in dup_positions:
            orders[er.order_id].append(er)
    assert len(orders) > 500
    terminal = {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
    seen_types: Counter[ExecType] = Counter()
    for reports in orders.values():
        first = reports[0]
        assert first.exec_type in (ExecType.NEW, ExecType.REJECTED)
        cum = notional = 0
        last_ts = 0
        for i, er in enumerate(reports):
            seen_types[er.exec_type] += 1
            assert er.exec_id == f"{er.order_id}-{i + 1}"
            assert er.ts_event > last_ts
            last_ts = er.ts_event
            if i:
                assert reports[i - 1].ord_status not in terminal  # nothing after the end
            assert er.cum_qty == cum + er.last_qty  # cum_qty never goes back
            cum = er.cum_qty
            if er.exec_type in (ExecType.PARTIAL_FILL, ExecType.FILL):
                assert er.last_qty > 0 and er.last_px is not None and er.last_px > 0
                notional += er.last_qty * er.last_px
                assert er.commission == div_round(er.last_qty * er.last_px, ONE * 10_000)
                if er.limit_price is not None:
                    if er.side is Side.BUY:
                        assert er.last_px <= er.limit_price
                    else:
                        assert er.last_px >= er.limit_price
            else:
                assert er.last_qty == 0 and er.last_px is None and er.commission is None
            assert er.avg_px == (div_round(notional, cum) if cum else None)
            if er.ord_status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED):
                assert er.cum_qty + er.leaves_qty == er.order_qty
                assert er.leaves_qty > 0
            else:
                assert er.leaves_qty == 0
            assert (
                er.ord_status
                == {
                    ExecType.NEW: OrdStatus.NEW,
                    ExecType.PARTIAL_FILL: OrdStatus.PARTIALLY_FILLED,
                    ExecType.FILL: OrdStatus.FILLED,
                    ExecType.CANCELED: OrdStatus.CANCELED,
                    ExecType.REJECTED: OrdStatus.REJECTED,
                    ExecType.EXPIRED: OrdStatus.EXPIRED,
                    ExecType.REPLACED: OrdStatus.PARTIALLY_FILLED if cum else OrdStatus.NEW,
                }[er.exec_type]
            )
            assert (er.reject_reason is not None) == (er.exec_type is ExecType.REJECTED)
    # The simulator writes the first schema version's exec types (FIX 4.2 style), which
    # every producer may still send; the FIX 4.4 ones are replayed by test_fix_scenarios.
    assert set(seen_types) == {ExecType.NEW, ExecType.PARTIAL_FILL, ExecType.FILL,
                               ExecType.CANCELED, ExecType.REJECTED, ExecType.EXPIRED,
                               ExecType.REPLACED}
    assert seen_types[ExecType.REPLACED] >= 5 and seen_types[ExecType.EXPIRED] >= 5


def test_fills_price_near_the_market(market: Market) -> None:
    tick = {i.symbol: i.tick_size for i in market.instruments}
    last_trade: dict[str, int] = {}
    checked = 0
    for lab in market.labels:
        rec = market.record(lab.pos)
        if isinstance(rec, Trade) and lab.fault == Fault.CLEAN:
            last_trade[rec.symbol] = rec.price
        elif isinstance(rec, ExecutionReport) and rec.last_px is not None:
            ref = last_trade.get(rec.symbol)
            if ref is not None:
                tolerance = max(ref // 100, 4 * tick[rec.symbol])  # 1 % or 4 ticks
                assert abs(rec.last_px - ref) <= tolerance, (rec, ref)
                checked += 1
    assert checked > 200


def test_orders_are_deterministic_and_named_by_the_run(market: Market) -> None:
    tag = SPEC.run_tag
    assert len(tag) == 6
    assert all(e.order_id.startswith(f"{tag}-O") for e in market.executions)
    assert {e.account_id for e in market.executions} == {f"ACC{a:03d}" for a in range(1, 6)}
    assert replace(SPEC, seed=12).run_tag != tag
    assert replace(SPEC, fault_rate=0.0, duration_s=10.0).run_tag == tag
