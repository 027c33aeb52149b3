"""Opening the ClickHouse store for reading, with a clear word when another process holds it.

The embedded engine (chDB) holds its data directory exclusively (docs/design.md, "Local services").
While a flow runs on it, a second process that opens the same path gets an engine error that
does not say why ("Error initializing EmbeddedServer", or "Cannot lock file .../status" in
other versions). The engine writes `PID: n` into `<path>/status` while it runs and removes the
file on a clean exit, so the holder can be named before trying: its pid and command line, and
what to do about it (the command line without anything that looks like a credential). A
status file whose pid is gone (a killed process) is stale: the engine
takes the directory over, so it is not reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tapeflow.errors import StoreUnavailableError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.dsn import scrub
from tapeflow.settings import Settings


def chdb_path(url: str) -> Path | None:
    """The data directory of a `chdb://` URL, None for a server URL."""
    if not url.startswith("chdb://"):
        return None
    path = url.removeprefix("chdb://").split("?", 1)[0]
    return Path(path) if path else None


def chdb_holder(path: Path) -> str | None:
    """'process PID (COMMAND)' when another live process holds the engine at `path`."""
    try:
        text = (path / "status").read_text(errors="replace")
    except OSError:
        return None
    pid = next((int(line.split(":", 1)[1]) for line in text.splitlines()
                if line.startswith("PID:") and line.split(":", 1)[1].strip().isdigit()), None)
    if pid is None or pid == os.getpid() or not _alive(pid):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        # One line whatever the arguments hold (a `python -c` script has newlines), and no
        # credentials if some other program was given a DSN on its command line.
        command = scrub(" ".join(raw.replace(b"\0", b" ").decode(errors="replace").split()))
    except OSError:
        command = ""
    if len(command) > 120:
        command = command[:117] + "..."
    return f"process {pid} ({command})" if command else f"process {pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def held_message(path: Path, holder: str) -> str:
    return (f"the embedded ClickHouse store {path} is held by {holder}; chDB allows one process "
            "per store. Stop that process (e.g. the running flow) and retry, or run the flows on "
            "a ClickHouse server (TAPEFLOW_CLICKHOUSE_DSN=http://host:8123) so queries can run "
            "beside them.")


def open_for_reading(settings: Settings) -> Any:
    """A ClickHouse client on the configured database; `StoreUnavailableError` with a one-line
    message naming the holder when an embedded store is held by another process."""
    url = settings.clickhouse_url()
    path = chdb_path(url)
    holder = chdb_holder(path) if path is not None else None
    if path is not None and holder is not None:
        raise StoreUnavailableError(held_message(path, holder))
    try:
        return open_clickhouse(url, settings.clickhouse.database)
    except StoreUnavailableError:
        # Taken between the check and the open: name the holder if it can be found now.
        holder = chdb_holder(path) if path is not None else None
        if path is not None and holder is not None:
            raise StoreUnavailableError(held_message(path, holder)) from None
        raise
