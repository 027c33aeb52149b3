"""Fault: a ClickHouse insert that fails because its table is gone (docs/faults.md).

chDB allows one process per data path, and a dataflow that raises aborts its whole process
(Bytewax panics), so the flow runs as `tapeflow run trading --batch` in a subprocess on its own
chDB directory. The failing condition is made before it starts: after `tapeflow init`, a short
subprocess drops `executions` (and later recreates it from its migrations' statements).
Nothing is faked: the flow's own ClickHouse sink meets the missing table on its first flush.

What it proves:
- the failure is surfaced, never skipped: the flow exits non-zero and its log has one error
  line naming the table (an unknown table is not transient: no retry can fix it);
- the stop is safe: no snapshot covers the unwritten rows, so once the table is recreated,
  a restart with the same recovery directory replays them, and the ClickHouse trading
  tables and the Postgres state equal an undisturbed run of the same input.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings
from tests.support.faults import FlowProcess, init_stores, order_flow, pg_state, reference_run
from tests.support.locations import REPO

CH_TABLES = {
    "executions": "SELECT exec_id, outcome FROM executions FINAL",
    "alerts": "SELECT alert_id FROM alerts FINAL",
    "pnl_snapshots": "SELECT account_id, symbol, ts, qty, avg_px, realised_pnl, cash "
                     "FROM pnl_snapshots FINAL",
}

_SCRIPT = r"""
import pickle, sys
from tapeflow.services.clickhouse import open_clickhouse
action, url, database, out = sys.argv[1:5]
client = open_clickhouse(url, database)
if action == "drop":
    client.command("DROP TABLE executions")
elif action == "recreate":  # its statements from the migrations, as an operator would
    from jobs.migrate import migrations, split_statements
    for m in migrations("clickhouse"):
        for stmt in split_statements(m.text):
            if stmt.startswith(("CREATE TABLE IF NOT EXISTS executions",
                                "ALTER TABLE executions ")):
                client.command(stmt)
else:
    queries = pickle.loads(bytes.fromhex(sys.argv[5]))
    state = {t: sorted(tuple(r) for r in client.query(
        q, query_formats={"DateTime64*": "int"}).result_rows) for t, q in queries.items()}
    with open(out, "wb") as f:
        pickle.dump(state, f)
"""


def _chdb(action: str, chdb_dir: Path, database: str, out: Path) -> Any:
    """Drop the table or read the state of the flow's chDB in a short subprocess."""
    subprocess.run([sys.executable, "-c", _SCRIPT, action, f"chdb://{chdb_dir}", database,
                    str(out), pickle.dumps(CH_TABLES).hex()], check=True, cwd=REPO,
                   timeout=120)
    if action != "read":
        return None
    with out.open("rb") as f:
        return pickle.load(f)


def test_a_missing_clickhouse_table_stops_the_flow_clearly_and_a_restart_replays(
        settings: Settings, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    flow_settings = settings.with_overrides(clickhouse_database="tapeflow",
                                            postgres_schema=f"tf_chf_{tag}")
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    chdb_dir = tmp_path / "chdb"
    init_stores(flow_settings, dsn, chdb_dir, topics=True)
    orders = order_flow(Codec(LocalCatalogue.load()))
    orders.send(flow_settings, 0)
    orders.send(flow_settings, 1)
    _chdb("drop", chdb_dir, "tapeflow", tmp_path / "unused")

    failed = FlowProcess(flow_settings, dsn, chdb_dir, tmp_path / "failed.log", batch=True)
    assert failed.wait(120) != 0
    lines = [line for line in failed.text().splitlines() if "ClickHouse write failed" in line]
    assert lines, failed.text()[-3000:]
    assert all(" ERROR " in line and "into executions failed and is not retryable" in line
               and "UNKNOWN_TABLE" in line for line in lines), lines
    assert any("the flow stops (a restart with recovery replays)" in line for line in lines)

    # `tapeflow init` does not bring it back (0001 is recorded as applied; docs/faults.md):
    _chdb("recreate", chdb_dir, "tapeflow", tmp_path / "unused")
    again = FlowProcess(flow_settings, dsn, chdb_dir, tmp_path / "again.log", batch=True)
    assert again.wait(120) == 0, again.text()[-3000:]

    reference = settings.with_overrides(clickhouse_database=f"tf_chr_{tag}",
                                        postgres_schema=f"tf_chr_{tag}")
    want_pg = reference_run(reference, dsn)
    client = open_clickhouse(reference.clickhouse_url(), reference.clickhouse.database)
    want_ch = {t: sorted(tuple(r) for r in client.query(
        q, query_formats={"DateTime64*": "int"}).result_rows) for t, q in CH_TABLES.items()}
    got_ch = _chdb("read", chdb_dir, "tapeflow", tmp_path / "state.pickle")
    assert len(got_ch["executions"]) == len(orders.exec_ids[1])
    assert got_ch == want_ch
    assert pg_state(dsn, flow_settings.postgres.schema) == want_pg
