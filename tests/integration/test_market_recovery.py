"""Crash test of the market flow: SIGKILL `tapeflow run market --batch` at random points, restart
it with the same recovery directory until it finishes, and compare every output with an
uninterrupted run of the same input.

One generated market (several symbols, faults and garbage on) is produced once to the test's
input topics. Both runs read those same topics; each writes into its own embedded ClickHouse
directory, and both append to the same md.marks and tapeflow.dlq topics: each run's records are
the ones between the topic's end offsets before and after it.

Compared exactly (every column but the bookkeeping `ingested_at`, latest version of each row
via FINAL): trades, quotes, rejected_ticks, candles_1s, candles_1m. Candle `version`s are
compared too: a version is the candle's trade count, the same in every run, so whatever a
killed process emitted, the replay's complete candle is the one FINAL keeps.

Compared as sets of (key, value) records: tapeflow.dlq and md.marks. Both topics are append-only
and at least once (docs/flows.md "Sinks and delivery"): a replay after a crash re-sends what was
sent after the last snapshot, byte for byte, so a crash run may hold a record more than once but
must hold exactly the same distinct records as the uninterrupted run. In a batch run over a
backlog the marks do not depend on wall-clock timing (no symbol goes quiet; the pending mark goes
out at the end of input), so marks are compared as exact sets, not by final value only; the
last mark per symbol is checked too.

Why 24 s of market: reading a backlog, trades run ahead of quotes in event time; past the
merge's 30 s bound the verdicts depend on read timing even without a crash (docs/flows.md,
"Delivery after a crash, as tested"). Volume comes from the number of symbols and the tick
rates instead: the batched flow (one item per poll of a partition) reads the default rates'
16,000 ticks in a few seconds, most of them start-up, too fast for four kills or more to land
while it runs, so those tests' markets are four times denser (`DENSE`).

Kill points (seeded): while ClickHouse writes the n-th part of a start (a `tmp_insert_*`
directory exists: mid-batch), and after random delays counted from the dataflow's start
(Bytewax registered the execution in the recovery store), early to late. Every kill must land
before the flow ends. Processes are started by the test and killed by their own pid only.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobs.generate import produce_market
from jobs.init import create_topics
from schemas.catalogue import TOPIC_DLQ, TOPIC_MARKS, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.topic_reader import end_offsets
from sources.synthetic import MarketSpec, generate_market
from tapeflow.settings import Settings
from tests.support.flow_process import FlowProcess, kill_after, kill_at_insert
from tests.support.kafka_env import kafka_env
from tests.support.run_outputs import BOOKKEEPING, TABLES, run_chdb, topic_records


class FlowRun(FlowProcess):
    """One `tapeflow run market --batch` deployment: its own ClickHouse and recovery dirs."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.chdb_dir = root / "chdb"
        self.url = f"chdb://{self.chdb_dir}"
        self.home = root / "home"
        self.database = settings.clickhouse.database
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
        self.env.update({
            **kafka_env(settings),
            "TAPEFLOW_CLICKHOUSE_DSN": self.url,
            "TAPEFLOW_CLICKHOUSE_DATABASE": self.database,
            "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "TAPEFLOW_HOME": str(self.home),
        })
        self.log = root / "flow.log"
        self.flow = "market"
        run_chdb("init", self.url, self.database)

    def read(self, root: Path) -> dict[str, Any]:
        tables: dict[str, Any] = run_chdb("read", self.url, self.database, root / "tables.pickle")
        return tables


def _term_after(proc: subprocess.Popen[bytes], delay_s: float, log: Path) -> bool:
    """SIGTERM `proc` after `delay_s` and require a clean stop (exit 0 after a snapshot);
    False if it ended before."""
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code == 0, f"SIGTERM: exit {code}: {log.read_text()[-2000:]}"
    assert "stopped after a snapshot" in log.read_text()
    return True


KillPoint = tuple[str, float, float]
"""("insert", n1, n2): kill while the n-th part (n drawn in [n1, n2]) is written;
("delay", f1, f2): kill after a delay drawn in [f1, f2] x the reference run's duration, both
counted from the dataflow's start (after the process's imports and pre-flight checks);
("term", f1, f2): the same delay, then SIGTERM, which must stop the flow cleanly."""


def _crash_test(settings: Settings, tmp_path: Path, spec: MarketSpec, seed: int,
                plan: list[KillPoint]) -> None:
    create_topics(settings)
    market = generate_market(spec)
    codec = Codec(LocalCatalogue.load())
    produce_market(settings, market, codec)
    out_topics = [settings.topic(TOPIC_DLQ), settings.topic(TOPIC_MARKS)]
    conf = settings.kafka_config()

    def ends() -> dict[str, dict[int, int]]:
        return {t: end_offsets(conf, t) for t in out_topics}

    # The uninterrupted reference run.
    before = ends()
    ref = FlowRun(settings, tmp_path / "ref")
    ref_s = ref.run_to_end()
    after_ref = ends()
    want = ref.read(tmp_path / "ref")
    want_topics = {t: topic_records(settings, t, before[t], after_ref[t]) for t in out_topics}

    # The crash run: killed at each point of the plan (each restart resumes from the last
    # snapshot), then left to finish.
    rng = random.Random(seed)
    crash = FlowRun(settings, tmp_path / "crash")
    kills: list[str] = []
    for point in plan:
        executions = crash.executions()
        proc = crash.start()
        crash.wait_running(proc, executions)
        if point[0] == "insert":
            nth = rng.randint(int(point[1]), int(point[2]))
            if kill_at_insert(proc, crash, nth, timeout_s=ref_s + 30):
                kills.append(f"while writing ClickHouse part #{nth}")
        elif point[0] == "term":
            delay = rng.uniform(point[1], point[2]) * ref_s
            if _term_after(proc, delay, crash.log):
                kills.append(f"SIGTERM after {delay:.2f} s")
        else:
            delay = rng.uniform(point[1], point[2]) * ref_s
            if kill_after(proc, delay):
                kills.append(f"after {delay:.2f} s")
    crash_s = crash.run_to_end()
    after_crash = ends()
    got = crash.read(tmp_path / "crash")
    got_topics = {t: topic_records(settings, t, after_ref[t], after_crash[t])
                  for t in out_topics}
    print(f"reference {ref_s:.1f} s; kills: {kills}; last restart {crash_s:.1f} s")
    assert len(kills) == len(plan), f"some kills missed (the flow ended first): {kills}"

    # Tables: the latest version of every row, every column but the bookkeeping one.
    for table in TABLES:
        want_cols, want_rows, _ = want[table]
        got_cols, got_rows, _ = got[table]
        assert got_cols == want_cols
        assert not set(BOOKKEEPING) & set(got_cols)
        assert want_rows, table
        missing = set(want_rows) - set(got_rows)
        extra = set(got_rows) - set(want_rows)
        assert not missing and not extra, (
            f"{table}: {len(missing)} rows lost, {len(extra)} rows differ or extra; "
            f"e.g. lost {sorted(missing)[:3]}, extra {sorted(extra)[:3]}")
        assert got_rows == want_rows, f"{table}: duplicate keys after FINAL"

    # Topics: at least once, so the same distinct records; the reference has no repeats.
    for topic in out_topics:
        want_records = want_topics[topic]
        got_records = got_topics[topic]
        assert want_records, topic
        assert len(set(want_records)) == len(want_records), f"{topic}: repeats without a crash"
        assert set(got_records) == set(want_records), (
            f"{topic}: {len(set(want_records) - set(got_records))} records lost, "
            f"{len(set(got_records) - set(want_records))} unexpected")
    def last_marks(records: list[tuple[bytes | None, bytes | None]]) -> dict[bytes | None, int]:
        last: dict[bytes | None, int] = {}
        for key, value in records:
            ts = codec.decode(value or b"", expect="Trade").ts_event
            last[key] = max(last.get(key, ts), ts)
        return last

    marks_topic = settings.topic(TOPIC_MARKS)
    last_mark, want_last = last_marks(got_topics[marks_topic]), last_marks(want_topics[marks_topic])
    assert last_mark == want_last


DENSE = {"trade_rate": 400.0, "quote_rate": 1200.0}
"""Four times the default tick rates: enough input for the kills to land mid-run."""


def test_market_flow_survives_kills(settings: Settings, tmp_path: Path) -> None:
    """Four kills: while writing an early part, early, while writing a later part, late."""
    spec = MarketSpec(seed=23, n_symbols=48, duration_s=24.0, fault_rate=0.02, **DENSE)
    _crash_test(settings, tmp_path, spec, seed=5,
                plan=[("insert", 1, 2), ("delay", 0.05, 0.15), ("insert", 1, 3),
                      ("delay", 0.05, 0.15)])


def test_sigterm_stops_the_flow_cleanly_and_a_restart_continues(settings: Settings,
                                                               tmp_path: Path) -> None:
    """SIGTERM mid-run: exit 0 after a snapshot (no traceback), and the restarted flow ends
    with exactly the uninterrupted run's tables and topics (#6, "SIGTERM")."""
    spec = MarketSpec(seed=29, n_symbols=32, duration_s=24.0, fault_rate=0.02)
    _crash_test(settings, tmp_path, spec, seed=3, plan=[("term", 0.2, 0.4)])


@pytest.mark.slow
def test_market_flow_survives_many_kills(settings: Settings, tmp_path: Path) -> None:
    """Eight kills (three while a part is written) on a larger market of 96 symbols."""
    spec = MarketSpec(seed=31, n_symbols=96, duration_s=24.0, fault_rate=0.03, **DENSE)
    _crash_test(settings, tmp_path, spec, seed=17,
                plan=[("insert", 1, 2), ("delay", 0.05, 0.1), ("insert", 2, 4),
                      ("delay", 0.1, 0.15), ("insert", 1, 3), ("delay", 0.1, 0.2),
                      ("delay", 0.15, 0.25), ("delay", 0.05, 0.1)])
