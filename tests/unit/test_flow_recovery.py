"""`tapeflow.runtime.recovery`: snapshots of an epoch a killed execution never finished are
discarded."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from bytewax.recovery import init_db_dir

from tapeflow.runtime.recovery import discard_uncommitted_snapshots, resume_epoch


def _sql(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(sqlite3.connect(path / "part-0.sqlite3")) as conn, conn:
        for sql, args in statements:
            conn.execute(sql, args)


def _snaps(path: Path) -> set[tuple[str, str, int]]:
    with closing(sqlite3.connect(path / "part-0.sqlite3")) as conn:
        return {(s, k, e) for s, k, e in conn.execute(
            "SELECT step_id, state_key, snap_epoch FROM snaps")}


def _ex(ex: int, workers: int, epoch: int) -> tuple[str, tuple[object, ...]]:
    return ("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)",
            (ex, workers, epoch))


def _front(ex: int, worker: int, frontier: int) -> tuple[str, tuple[object, ...]]:
    return ("INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)",
            (ex, worker, frontier))


def _snap(key: str, epoch: int) -> tuple[str, tuple[object, ...]]:
    return ("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            ("flow.market", key, epoch, b"x"))


def test_snapshots_of_an_unfinished_epoch_are_discarded(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    assert resume_epoch(tmp_path) is None
    assert discard_uncommitted_snapshots(tmp_path) == 0
    # Execution 0 wrote epoch 1's snapshots of A and B, then was killed before its frontier.
    _sql(tmp_path, _ex(0, 1, 1), _snap("A", 1), _snap("B", 1))
    assert resume_epoch(tmp_path) == 1
    assert discard_uncommitted_snapshots(tmp_path) == 2
    assert _snaps(tmp_path) == set()
    # Execution 1 finished epochs 1 and 2 (frontier 3) and was killed while writing epoch 3.
    _sql(tmp_path, _ex(1, 1, 1), _snap("A", 1), _snap("A", 2), _front(1, 0, 3), _snap("B", 3))
    assert resume_epoch(tmp_path) == 3
    assert discard_uncommitted_snapshots(tmp_path) == 1
    assert _snaps(tmp_path) == {("flow.market", "A", 1), ("flow.market", "A", 2)}


def test_the_slowest_worker_sets_the_resume_epoch(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    # Two workers resumed at 2; worker 0 reached 5, worker 1 recorded nothing: resume at 2.
    _sql(tmp_path, _ex(0, 2, 2), _front(0, 0, 5), _snap("A", 1), _snap("A", 2), _snap("B", 4))
    assert resume_epoch(tmp_path) == 2
    assert discard_uncommitted_snapshots(tmp_path) == 2
    assert _snaps(tmp_path) == {("flow.market", "A", 1)}
