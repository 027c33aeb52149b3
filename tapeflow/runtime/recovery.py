"""Recovery stores: where they are, creating them once, and housekeeping Bytewax 0.21.1 does not
do itself.

**Stale snapshots of a crashed execution.** Bytewax writes each epoch's snapshots
(`snaps`: step, key, epoch) as the epoch closes and records progress in `fronts` afterwards. A
process killed in between leaves snapshots for an epoch that never completed. The next
execution resumes at the last completed epoch R (loading, per key, the newest snapshot with
epoch < R) and numbers its epochs from R again, but it does not delete the dead execution's
snapshots with epoch >= R. Its own snapshots overwrite them only for the keys it touches in
that epoch; every other key keeps the dead execution's newer state, and the execution after
the next crash loads it, paired with the older Kafka offsets of the live one. Measured with the
market crash test (tests/integration/test_market_recovery.py): thousands of ticks replayed into
filter states that had already seen them, rejected as `duplicate_seq` instead of stored.

`discard_uncommitted_snapshots` deletes them before an execution starts: it computes the resume
epoch exactly as Bytewax does (the newest execution's per-worker frontier, its resume epoch
where a worker recorded none; the minimum over workers) and removes every snapshot at or after
it, in every partition. Run it only while no process uses the directory.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from bytewax.recovery import init_db_dir

from tapeflow.settings import Settings

log = logging.getLogger("tapeflow.runtime.recovery")


def _partitions(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.sqlite3")) if path.exists() else []


def resume_epoch(path: Path) -> int | None:
    """The epoch the next execution resumes from; None for a store that never ran."""
    executions: dict[int, tuple[int, int]] = {}
    fronts: dict[tuple[int, int], int] = {}
    for part in _partitions(path):
        with closing(sqlite3.connect(part)) as conn:
            for ex_num, workers, epoch in conn.execute(
                    "SELECT ex_num, worker_count, resume_epoch FROM exs"):
                executions[int(ex_num)] = (int(workers), int(epoch))
            for ex_num, worker, frontier in conn.execute(
                    "SELECT ex_num, worker_index, worker_frontier FROM fronts"):
                key = (int(ex_num), int(worker))
                fronts[key] = max(fronts.get(key, int(frontier)), int(frontier))
    if not executions:
        return None
    last = max(executions)
    workers, resumed_at = executions[last]
    return min(max(resumed_at, fronts.get((last, w), resumed_at)) for w in range(workers))


def discard_uncommitted_snapshots(path: Path) -> int:
    """Delete snapshots no completed epoch covers (see the module doc); returns how many."""
    epoch = resume_epoch(path)
    if epoch is None:
        return 0
    deleted = 0
    for part in _partitions(path):
        with closing(sqlite3.connect(part)) as conn, conn:
            deleted += conn.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
    if deleted:
        log.info("recovery %s: discarded %d snapshots of an unfinished epoch (>= %d)", path,
                 deleted, epoch)
    return deleted


def recovery_path(settings: Settings, flow: str, shard: tuple[int, int] | None) -> Path:
    """The recovery store of a run: `runtime.recovery_dir` when set, else one per flow and
    shard under HOME (shards are independent dataflows)."""
    if settings.runtime.recovery_dir is not None:
        return settings.runtime.recovery_dir.resolve()
    name = flow if shard is None else f"{flow}-shard{shard[0]}of{shard[1]}"
    return (settings.home / "recovery" / name).resolve()


def ensure_recovery_dir(path: Path, partitions: int) -> None:
    """Create the recovery partitions once; their count is fixed forever after."""
    existing = _partitions(path)
    if existing:
        if len(existing) != partitions:
            log.warning("recovery dir %s has %d partitions (not %d); keeping them", path,
                        len(existing), partitions)
        return
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, partitions)
