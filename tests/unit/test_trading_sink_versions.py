"""Versions the trading sinks write: a restarted process outranks the rows of a killed one.

Why it matters (found by tests/integration/test_trading_recovery.py): a position's or
account's version counts marks, so a process killed mid-run may have written an older state
with a higher version than the replay's final one, and the version guard would keep it.
"""

from __future__ import annotations

from typing import Any

from sinks.clickhouse.flow_sink import clickhouse_trading_mapper
from sinks.clickhouse.trading_rows import TABLE_COLUMNS
from sinks.postgres.flow_sink import _postgres_rows
from sinks.versions import VERSION_BASE_SHIFT, restart_version_base
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    ExecutionResult,
    PnlSnapshot,
    ShardState,
    on_report_inplace,
)
from tests.support.trading_builders import OrderSim, u

T_MS = 1_763_800_000_000  # 2025-11-22


def _fill_result() -> ExecutionResult:
    shard = ShardState()
    sim = OrderSim("o", qty=u(10))
    on_report_inplace(shard, sim.new(), TradingConfig())
    (result,) = on_report_inplace(shard, sim.fill(u(10), u(100)), TradingConfig())
    assert isinstance(result, ExecutionResult)
    return result


def test_a_later_process_outranks_any_version_an_earlier_one_wrote() -> None:
    earlier, later = restart_version_base(T_MS), restart_version_base(T_MS + 1)
    # An earlier process making fewer than 2^20 changes per ms of its life stays below.
    assert earlier + (1 << VERSION_BASE_SHIFT) - 1 < later
    assert restart_version_base(T_MS + 1000) - earlier == 1000 << VERSION_BASE_SHIFT
    assert restart_version_base(0) == 0
    assert restart_version_base() < 2**63  # BIGINT and UInt64


def test_positions_and_accounts_are_rebased_and_report_decided_rows_are_not() -> None:
    result = _fill_result()
    plain: list[tuple[str, dict[str, Any]]] = _postgres_rows(result)
    rebased: list[tuple[str, dict[str, Any]]] = _postgres_rows(result, version_base=1 << 40)
    assert [t for t, _ in plain] == [t for t, _ in rebased]
    assert {t for t, _ in plain} >= {"execution_log", "orders", "positions", "accounts"}
    for (table, row), (_, new) in zip(plain, rebased, strict=True):
        if table in {"positions", "accounts"}:
            assert new == {**row, "version": row["version"] + (1 << 40)}
        else:
            assert new == row


def test_clickhouse_rebases_pnl_snapshots_only() -> None:
    snap = PnlSnapshot("ACC", "", 60_000_000, 0, 0, None, 0, 0, u(5), u(5), 7)
    table, row = clickhouse_trading_mapper(1000)(snap)
    version = TABLE_COLUMNS[table].index("version")
    assert row[version] == 1007
    assert clickhouse_trading_mapper(0)(snap)[1][version] == 7
    result = _fill_result()
    assert clickhouse_trading_mapper(1000)(result) == clickhouse_trading_mapper(0)(result)
