"""A local Bytewax cluster: `--processes N` starts N processes of one flow on this machine.

Each child is `tapeflow run FLOW --process-id i --addresses ...` with every one of the
parent's settings (`child_environment`), and the parent forwards SIGTERM/SIGINT so they stop
together.

Why the secrets travel as files: a child must build exactly the parent's settings, and the
parent may hold secrets it did not read from a variable the child inherits (the embedded
Postgres's DSN, a value given in code). Passing them as environment values would put them in
each child's environment block, where a secret read from a `*_FILE` never was; so each is
written to a file only this user can read (`TAPEFLOW_<NAME>_FILE`, the convention the settings
already read), in a private directory removed when the children have exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from jobs.local.ports import free_ports
from tapeflow.runtime.recovery import (
    discard_uncommitted_snapshots,
    ensure_recovery_dir,
    recovery_path,
)
from tapeflow.settings import Settings


@contextmanager
def child_environment(settings: Settings,
                      base: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The environment of a child process that must build the same settings as `settings`:
    `base` (default: this process's environment), every knob as its variable, and every secret
    as a `*_FILE` in a private directory that exists until the block ends."""
    env = dict(os.environ if base is None else base)
    env.update(settings.environment())
    with tempfile.TemporaryDirectory(prefix="tapeflow-secrets-") as folder:  # mode 0700
        for variable, value in settings.secret_environment().items():
            path = Path(folder) / variable
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(value + "\n")  # the reader drops one trailing newline
            env.pop(variable, None)  # a variable and its _FILE twin together are refused
            env[f"{variable}_FILE"] = str(path)
        yield env


def spawn_local_cluster(settings: Settings, flow: str, processes: int, *,
                        child_args: Sequence[str], recovery: bool,
                        shard: tuple[int, int] | None, module: str = "tapeflow.cli") -> int:
    """Run `processes` local processes of one Bytewax cluster; returns the worst exit code.
    `module` is what each child runs with `python -m` (the command line; tests pass their
    own to see what a child receives)."""
    if recovery:
        path = recovery_path(settings, flow, shard)
        ensure_recovery_dir(path, settings.runtime.recovery_partitions)
        discard_uncommitted_snapshots(path)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    base = [sys.executable, "-m", module, "run", flow, "--addresses", addresses, *child_args]
    with child_environment(settings) as env:
        children = [subprocess.Popen([*base, "--process-id", str(i)], env=env)
                    for i in range(processes)]

        def forward(signum: int, _frame: object) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        previous = {signum: signal.signal(signum, forward)
                    for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            codes = [child.wait() for child in children]
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return max(codes, key=abs)
