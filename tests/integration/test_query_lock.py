"""`tapeflow query` and `tapeflow chart` while another process holds the embedded store.

chDB allows one process per data directory (docs/design.md, "Local services"). A subprocess opens a
store and keeps it, as a running flow does; the real CLI, in another subprocess, must then end
in one line that names the holder (its pid) and what to do, exit 1, print no traceback and
write no file. Once the holder is gone, the same command answers. The test process never opens
the store itself (it would hold it too); processes are ended by their own pid only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
_HOLD = r"""
import sys
from jobs.init import init_clickhouse
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings
url = sys.argv[1]
init_clickhouse(Settings(clickhouse_dsn=url, clickhouse_database="tapeflow"))
client = open_clickhouse(url, "tapeflow")
client.command("SELECT 1")
print("held", flush=True)
sys.stdin.read()  # hold until the test closes our stdin
"""


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env["TAPEFLOW_CLICKHOUSE_DSN"] = url
    return subprocess.run([sys.executable, "-m", "tapeflow.cli", *args],
                          cwd=_REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_held_store_gives_one_line_naming_the_holder(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'chdb'}"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, url], cwd=_REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        png = tmp_path / "chart.png"
        for args in (("query", "candles", "AAPL", "--interval", "5m"),
                     ("query", "vwap", "--format", "json"),
                     ("chart", "AAPL", "--output", str(png))):
            run = _cli(url, *args)
            assert run.returncode == 2, (args, run.stderr)
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1, run.stderr
            line = lines[0]
            assert line.startswith("tapeflow: error: the embedded ClickHouse store"), line
            assert f"held by process {holder.pid} (" in line and "-c" in line
            assert "Stop that process" in line and "ClickHouse server" in line
            assert "Traceback" not in run.stderr and run.stdout == ""
        assert not png.exists()
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=60)

    # The holder is gone: the same store answers (no candles yet, so an empty table).
    run = _cli(url, "query", "candles", "AAPL", "--format", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith("symbol,bucket,open,high,low,close")
