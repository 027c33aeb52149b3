"""A flow run's outputs, read the way the subprocess tests read them: the market tables
compared (`TABLES`, every column but `BOOKKEEPING`), an embedded ClickHouse initialised or read
in a short subprocess (`CHDB_SCRIPT`, `run_chdb`), and an output topic's records between two
end offsets (`topic_records`). Used by the market crash and scale tests, the metrics test and
the trading crash test's runs (tests/support/trading_runs.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from sources.kafka.topic_reader import read_all
from tapeflow.settings import Settings
from tests.support.locations import REPO

TABLES = ("trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m")
BOOKKEEPING = ("ingested_at",)

CHDB_SCRIPT = r"""
import pickle, sys
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings
from jobs.init import init_clickhouse

action, url, database, out = sys.argv[1:5]
if action == "init":
    init_clickhouse(Settings(clickhouse_dsn=url, clickhouse_database=database))
    sys.exit(0)
client = open_clickhouse(url, database)
tables = {}
for table in sys.argv[5].split(","):
    cols = [r[0] for r in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "ORDER BY position", parameters={"t": table}).result_rows
        if r[0] != "ingested_at"]
    # A candle's stored version is its writer's base + its trade count (sinks.versions): a
    # restarted process writes under a higher base, so runs compare by the count part.
    select = [f"bitAnd(version, 1048575) AS version" if c == "version" else c for c in cols]
    rows = client.query(f"SELECT {', '.join(select)} FROM {table} FINAL",
                        query_formats={"DateTime64*": "int"}).result_rows
    raw = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
    rows = [tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in rows]
    tables[table] = (cols, sorted(rows), raw)
client.close()
with open(out, "wb") as f:
    pickle.dump(tables, f)
"""
"""`python -c CHDB_SCRIPT init|read URL DATABASE OUT TABLES`: `init` creates the tables; `read`
pickles {table: (columns, rows FINAL sorted, raw row count)} of the comma-separated TABLES to
OUT, every column but `ingested_at`."""


def run_chdb(action: str, url: str, database: str, out: Path | None = None) -> Any:
    """Init or read an embedded ClickHouse in a short subprocess: chDB holds a directory (and
    this test process would hold an engine path) exclusively, so the test never opens one."""
    args = [sys.executable, "-c", CHDB_SCRIPT, action, url, database, str(out or ""),
            ",".join(TABLES)]
    subprocess.run(args, check=True, cwd=REPO, timeout=120)
    if out is None:
        return None
    with out.open("rb") as f:
        return pickle.load(f)


def topic_records(settings: Settings, topic: str, start: dict[int, int],
                  end: dict[int, int]) -> list[tuple[bytes | None, bytes | None]]:
    """The (key, value) records of `topic` from the `start` offsets up to (not including) the
    `end` offsets, per partition."""
    msgs = read_all(settings.kafka_config(), topic, start=start)
    return [(m.key(), m.value()) for m in msgs if (m.offset() or 0) < end[m.partition() or 0]]
