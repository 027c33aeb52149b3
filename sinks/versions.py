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


CANDLE_VERSION_SHIFT = 20
"""A candle's stored version is base + trade count; the count stays below 2^20 per bucket."""
_last_candle_base = 0


def candle_version_base(now_s: float | None = None) -> int:
    """Added to the version (= trade count) of every candle a writer stores: the writer's start
    in whole seconds since 2024 x 2^20, and above every base this process handed out before.

    Why (docs/design.md, decision 9): a candle's content-derived version (its trade count) only
    grows within one run, but a rewrite of a bucket by a later run (a backfill rerun over a fixed
    file, a tighter filter, a bust, a stream restarted after a crash) may hold fewer trades, and
    ReplacingMergeTree(version) would keep the old candle. With the base, every row a later
    writer stores outranks every row of the writers before it, and within a writer the version
    still grows with each correction. Idempotence is kept: the same emission twice has the same
    version; a replay rewrites its rows with the same content under a higher version.

    Why seconds, not the trading side's milliseconds (`restart_version_base`): roll-ups sum their
    parts' versions (a 1-day candle sums 1,440 one-minute versions), and with a seconds base a
    part stays below 2^53 until 2296, so the sum fits ClickHouse's UInt64 and every version is
    exact as a JSON number. Two writers of the same bucket must start at least a second apart for
    the later one to win (a restart or a command-line run takes longer; within one process the
    base is made strictly increasing). Assumes clocks that do not run backwards between writers;
    a bucket of 2^20 trades or more spills into the base, and then still outranks a writer that
    started a second or more before.
    """
    global _last_candle_base  # noqa: PLW0603 - one counter per process, by design
    seconds = int(time.time() if now_s is None else now_s)
    base = max(0, seconds - _VERSION_EPOCH_MS // 1000) << CANDLE_VERSION_SHIFT
    if now_s is None:
        base = max(base, _last_candle_base + (1 << CANDLE_VERSION_SHIFT))
        _last_candle_base = base
    return base
