"""Versions of the rows a restarted process writes: why they start above every earlier process's.

Shared by the Postgres and ClickHouse sinks of the trading flow, whose mark-revalued rows
(positions, accounts, pnl_snapshots) carry versions that count marks as well as reports.
"""

from __future__ import annotations

import time

_VERSION_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
VERSION_BASE_SHIFT = 20
MARK_VERSIONED_TABLES = frozenset({"positions", "accounts"})
"""Postgres tables whose `version` counts marks as well as reports (the others' versions count
reports only and are the same in every run)."""


def restart_version_base(now_ms: int | None = None) -> int:
    """Added to the versions of mark-revalued rows (positions, accounts, pnl_snapshots) that
    this process writes: the writer's start time in ms since 2024 x 2^20.

    Why: a position's or account's version counts every change, marks included, and how marks
    interleave with reports differs between a process killed mid-run and the replay that
    resumes from its last snapshot. The dead process may have written a state (older in the
    reports) with a *higher* version than the replay's final state, and the version guard
    (`WHERE version < excluded.version`, ReplacingMergeTree(version)) would keep it forever:
    seen in tests/integration/test_trading_recovery.py (a closed position left open). With
    the base, any row a restarted process writes outranks every row of the processes before it,
    and the replay rewrites every row the dead process wrote after the snapshot (it replays the
    same reports and marks from there), ending at its final state. Within a process the
    version still only grows. The versions stay monotonic across restarts as long as a
    process makes fewer than 2^20 changes per account per millisecond of its life; they fit
    BIGINT / UInt64 until 2300. Cost: a second run over the same input (or a replay) rewrites
    these rows, passing through older states, instead of leaving them untouched.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return max(0, ms - _VERSION_EPOCH_MS) << VERSION_BASE_SHIFT
