"""A local Bytewax cluster: `--processes N` starts N processes of one flow on this machine.

Each child is `tapeflow run FLOW --process-id i --addresses ...` with every one of the
parent's settings in its environment (`Settings.environment`; secrets come from where the
parent read them), and the parent forwards SIGTERM/SIGINT so they stop together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from jobs.local.ports import free_ports
from tapeflow.runtime.recovery import (
    discard_uncommitted_snapshots,
    ensure_recovery_dir,
    recovery_path,
)
from tapeflow.settings import Settings


def spawn_local_cluster(settings: Settings, flow: str, processes: int, *,
                        child_args: Sequence[str], recovery: bool,
                        shard: tuple[int, int] | None) -> int:
    """Run `processes` local processes of one Bytewax cluster; returns the worst exit code."""
    if recovery:
        path = recovery_path(settings, flow, shard)
        ensure_recovery_dir(path, settings.runtime.recovery_partitions)
        discard_uncommitted_snapshots(path)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    base = [sys.executable, "-m", "tapeflow.cli", "run", flow, "--addresses", addresses,
            *child_args]
    env = {**os.environ, **settings.environment()}
    children = [subprocess.Popen([*base, "--process-id", str(i)], env=env)
                for i in range(processes)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)
