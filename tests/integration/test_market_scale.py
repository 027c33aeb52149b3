"""Scale-out of the market flow gives the same results: one process, two shard processes, and
one process with two workers read the same input and must produce the same output.

One generated market (40 symbols, 20 s of event time, 2 % faults and garbage on) is produced
once to 4-partition input topics (md.trades / md.quotes keyed by symbol, so a symbol lives in
one partition). Three setups then run `tapeflow run market --batch --no-recovery` on it, one
after the other:

- A, the reference: one process, one worker;
- B, two independent shard processes run concurrently, `--shard 0/2` (partitions 0 and 2) and
  `--shard 1/2` (partitions 1 and 3);
- C: one process with `--workers 2` (Bytewax's exchange between two worker threads).

ClickHouse: the embedded chDB engine holds a directory exclusively, so two processes cannot
share one store. The server-less mode that works with several processes is one embedded store
per shard: each setup (and each shard of B) writes into its own chDB directory (A, B0, B1, C).
The test itself never opens a chDB directory; it reads each one in a short subprocess
(`run_chdb` of tests/support/run_outputs.py). Postgres is not used by the market flow.

Compared exactly, per table (trades, quotes, rejected_ticks, candles_1s, candles_1m; latest
version of each row via FINAL; every column but the bookkeeping `version` / `ingested_at`):
- B0 + B1 == A, and no row is in both B0 and B1 (the shards own disjoint sets of symbols,
  checked on the symbol column too);
- C == A.

Compared as sets of distinct (key, value) records: md.marks and tapeflow.dlq. All setups append
to the same output topics; a setup's records are those between the topics' end offsets before
and after it (hence the setups run sequentially). For B the two shards' records together.

Kept to 20 s of market: a batch run over a backlog longer than the merge's 30 s bound may give
read-timing-dependent verdicts (docs/flows.md), which would make the comparison flaky.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobs.generate import produce_market
from jobs.init import create_topics
from schemas.catalogue import TOPIC_DLQ, TOPIC_MARKS, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.topic_reader import end_offsets
from sources.synthetic import MarketSpec, generate_market
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO
from tests.support.run_outputs import BOOKKEEPING, TABLES, run_chdb, topic_records

Tables = dict[str, tuple[list[str], list[tuple[Any, ...]], int]]


class Deployment:
    """One `tapeflow run market --batch --no-recovery` process into its own chDB directory."""

    def __init__(self, settings: Settings, root: Path, *args: str) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.url = f"chdb://{root / 'chdb'}"
        self.database = settings.clickhouse.database
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
        self.env.update({
            **kafka_env(settings),
            "TAPEFLOW_CLICKHOUSE_DSN": self.url,
            "TAPEFLOW_CLICKHOUSE_DATABASE": self.database,
            "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "TAPEFLOW_HOME": str(root / "home"),
        })
        self.log = root / "flow.log"
        run_chdb("init", self.url, self.database)

    def start(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tapeflow.cli", "run", "market", "--batch",
               "--no-recovery", *self.args]
        with self.log.open("ab") as log:
            return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)

    def read(self) -> Tables:
        tables: Tables = run_chdb("read", self.url, self.database, self.root / "tables.pickle")
        return tables


def _run_all(deployments: list[Deployment], timeout_s: float = 120.0) -> float:
    """Start every deployment at once, wait for all; returns the wall time."""
    t0 = time.monotonic()
    procs = [d.start() for d in deployments]
    try:
        codes = [p.wait(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:  # only on a timeout: our own children, by their own pid
            if p.poll() is None:
                p.kill()
                p.wait()
    for d, code in zip(deployments, codes, strict=True):
        assert code == 0, f"{d.args} exited with {code}: {d.log.read_text()[-3000:]}"
    return time.monotonic() - t0


def _assert_same(table: str, got: list[tuple[Any, ...]], want: list[tuple[Any, ...]],
                 what: str) -> None:
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, (
        f"{table} ({what}): {len(missing)} rows missing, {len(extra)} differ or extra; "
        f"e.g. missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}")
    assert sorted(got) == sorted(want), f"{table} ({what}): duplicate rows"


def test_shards_and_workers_match_one_process(settings: Settings, tmp_path: Path) -> None:
    settings = settings.with_overrides(kafka_partitions=4)
    create_topics(settings)
    spec = MarketSpec(seed=41, n_symbols=40, duration_s=20.0, trade_rate=300.0,
                      quote_rate=900.0, fault_rate=0.02)
    produce_market(settings, generate_market(spec), Codec(LocalCatalogue.load()))
    out_topics = [settings.topic(TOPIC_MARKS), settings.topic(TOPIC_DLQ)]
    conf = settings.kafka_config()

    def ends() -> dict[str, dict[int, int]]:
        return {t: end_offsets(conf, t) for t in out_topics}

    setups = {
        "one process": [Deployment(settings, tmp_path / "A")],
        "two shards": [Deployment(settings, tmp_path / "B0", "--shard", "0/2"),
                       Deployment(settings, tmp_path / "B1", "--shard", "1/2")],
        "two workers": [Deployment(settings, tmp_path / "C", "--workers", "2")],
    }
    records: dict[str, dict[str, set[tuple[bytes | None, bytes | None]]]] = {}
    tables: dict[str, list[Tables]] = {}
    for name, deployments in setups.items():
        before = ends()
        seconds = _run_all(deployments)
        after = ends()
        print(f"{name}: {seconds:.1f} s")
        records[name] = {t: set(topic_records(settings, t, before[t], after[t]))
                         for t in out_topics}
        tables[name] = [d.read() for d in deployments]

    (want,) = tables["one process"]
    shard0, shard1 = tables["two shards"]
    (workers,) = tables["two workers"]
    for table in TABLES:
        cols, want_rows, _ = want[table]
        assert want_rows, table
        assert not set(BOOKKEEPING) & set(cols)
        assert shard0[table][0] == cols and shard1[table][0] == cols and workers[table][0] == cols
        rows0, rows1 = shard0[table][1], shard1[table][1]
        assert rows0 and rows1, f"{table}: a shard wrote nothing"
        assert not set(rows0) & set(rows1), f"{table}: rows in both shards"
        sym = cols.index("symbol")
        assert not {r[sym] for r in rows0} & {r[sym] for r in rows1}, f"{table}: shared symbols"
        _assert_same(table, rows0 + rows1, want_rows, "two shards")
        _assert_same(table, workers[table][1], want_rows, "two workers")

    for topic in out_topics:
        want_records = records["one process"][topic]
        assert want_records, topic
        for name in ("two shards", "two workers"):
            got = records[name][topic]
            assert got == want_records, (
                f"{topic} ({name}): {len(want_records - got)} records missing, "
                f"{len(got - want_records)} unexpected")
