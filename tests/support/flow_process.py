"""One `tapeflow run FLOW --batch` deployment as a subprocess, for the crash tests, and the
kills they deal it.

Shared by the market and trading crash tests (test_market_recovery.py, trading_runs.py): start
the real command, tell when Bytewax registered a start in the recovery store, run to the end,
and see the ClickHouse parts being written (a kill there is a kill mid-batch). A subclass sets
`flow`, `home`, `log`, `env` and `chdb_dir`. `kill_at_insert` and `kill_after` SIGKILL a started
process by its own pid, mid-insert or after a delay.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from tests.support.locations import REPO

SNAPSHOT_S = 0.5


class FlowProcess:
    flow: str
    home: Path
    log: Path
    env: dict[str, str]
    chdb_dir: Path

    def start(self) -> subprocess.Popen[bytes]:
        # The real command: it discards snapshots a killed run left for an unfinished epoch
        # (tapeflow/runtime/recovery.py) before Bytewax resumes.
        cmd = [sys.executable, "-m", "tapeflow.cli", "run", self.flow, "--batch",
               "--snapshot-interval", str(SNAPSHOT_S)]
        with self.log.open("ab") as log:
            return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)

    def executions(self) -> int:
        """Executions Bytewax has registered in the recovery store (one per start that got as
        far as running the dataflow)."""
        db = self.home / "recovery" / self.flow / "part-0.sqlite3"
        if not db.exists():
            return 0
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
                return int(conn.execute("SELECT count(*) FROM exs").fetchone()[0])
        except sqlite3.Error:
            return 0

    def wait_running(self, proc: subprocess.Popen[bytes], before: int,
                     timeout_s: float = 60.0) -> float:
        """Wait until this start's execution is registered; returns the monotonic time."""
        deadline = time.monotonic() + timeout_s
        while self.executions() <= before:
            assert proc.poll() is None, f"flow exited at start-up: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the flow did not start"
            time.sleep(0.01)
        return time.monotonic()

    def run_to_end(self, timeout_s: float = 120.0) -> float:
        """Run (or resume) to the end of the input; returns the time from the dataflow's start
        (after imports and pre-flight checks) to the exit."""
        before = self.executions()
        proc = self.start()
        try:
            started = self.wait_running(proc, before)
            code = proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, f"flow exited with {code}: {self.log.read_text()[-3000:]}"
        return time.monotonic() - started

    def inserts(self) -> set[str]:
        """The parts ClickHouse is writing right now (`tmp_insert_*` directories)."""
        found: set[str] = set()
        for dirpath, dirnames, _files in os.walk(self.chdb_dir / "store"):
            found.update(f"{dirpath}/{d}" for d in dirnames if d.startswith("tmp_insert"))
        return found


def kill_at_insert(proc: subprocess.Popen[bytes], run: FlowProcess, nth: int,
                   timeout_s: float) -> bool:
    """SIGKILL `proc` (by its own pid) while it writes its `nth` ClickHouse part of this start;
    False if it ended first."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        writing = run.inserts()
        seen |= writing
        if writing and len(seen) >= nth:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return proc.returncode == -signal.SIGKILL
        time.sleep(0.001)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return False


def kill_after(proc: subprocess.Popen[bytes], delay_s: float) -> bool:
    """SIGKILL `proc` after `delay_s`; False if it ended before."""
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
