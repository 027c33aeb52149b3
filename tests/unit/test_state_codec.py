"""`flows.state_codec.dumps`: a trading shard pickled by it loads equal to the shard, and a
shard resumed from it steps on exactly as the original (the recovery snapshot's contract)."""

from __future__ import annotations

import pickle
from datetime import timedelta

from flows.state_codec import dumps
from flows.trading_logic import ShardLogic
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.positions import MarkPrice
from tapeflow.core.trading.shard_step import (
    DEFAULT_SHARD_CONFIG,
    ShardState,
    on_market_inplace,
    on_report_inplace,
)
from tests.support.trading_builders import T0, OrderSim, u

TICK = timedelta(seconds=5)
CONFIG = TradingConfig(RiskLimitBook(RiskLimits(max_order_qty=150 * ONE)))


def _shard() -> tuple[ShardState, list[OrderSim]]:
    shard = ShardState()
    sims = [OrderSim(f"O{i}", (100 + i) * ONE, account_id=f"A{i % 3}",
                     symbol=("XYZ", "ABC")[i % 2], ts=T0 + i * 1_000_000) for i in range(12)]
    for sim in sims:
        on_report_inplace(shard, sim.new(), CONFIG)
        on_report_inplace(shard, sim.fill(u(40), u("100.25")), CONFIG)
    on_market_inplace(shard, MarkPrice("XYZ", u("101.5"), T0 + 20_000_000, "m1"), CONFIG)
    return shard, sims


def test_a_shard_loads_equal_and_resumes_identically() -> None:
    shard, sims = _shard()
    data = dumps(shard)
    assert pickle.loads(data) == shard == pickle.loads(pickle.dumps(shard))
    resumed = pickle.loads(data)
    tail = [sim.fill(u(10), u("99.5")) for sim in sims[:5]]
    mark = MarkPrice("ABC", u("98"), T0 + 30_000_000, "m2")
    want = [on_report_inplace(shard, r, CONFIG) for r in tail]
    want.append(on_market_inplace(shard, mark, CONFIG))
    got = [on_report_inplace(resumed, r, CONFIG) for r in tail]
    got.append(on_market_inplace(resumed, mark, CONFIG))
    assert got == want and resumed == shard


def test_the_shard_logic_snapshot_is_the_pickled_shard_and_resumes_from_it() -> None:
    shard, _ = _shard()
    logic = ShardLogic(lambda: CONFIG, DEFAULT_SHARD_CONFIG, TICK, resume=shard)
    snapshot = logic.snapshot()
    assert isinstance(snapshot, bytes) and pickle.loads(snapshot) == shard
    again = ShardLogic(lambda: CONFIG, DEFAULT_SHARD_CONFIG, TICK, resume=snapshot)
    assert again.snapshot() == snapshot
