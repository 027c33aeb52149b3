"""Throughput of the trading flow, one process: executions per second, Kafka in -> Postgres,
ClickHouse and Kafka out, against the pure core over the same input.

Not a test: a measurement. Generates one synthetic order flow (default: 60 s of event time,
300 orders/s, 40 accounts, 30 symbols, ~40k execution reports with the generator's re-sends
and garbage, plus ~1,800 marks, one per symbol per second), produces it once to fresh topics
(a new topic prefix, `--partitions` partitions) on the local test broker, then, in each round:

- flow:     `tapeflow run trading --batch` (recovery on, as `tapeflow run` defaults, in a
            fresh recovery directory; snapshot interval 10 s) into a fresh Postgres schema and
            embedded ClickHouse directory (initialised before the clock starts). Times: "wall"
            from process start to exit, "dataflow" from the moment the Kafka source started
            (librdkafka clients alive in the process, polled in /proc every 5 ms) to the exit:
            it leaves out imports, pre-flight checks and chDB start-up (~3-5 s).
- baseline: in this process, the pure core (`tapeflow.core.trading.shard_step.on_report_inplace` /
            `on_market_inplace`) folded over the same decoded reports and marks in arrival order,
            with the same limits; and the same with Avro decoding of every record first. No I/O.

Risk limits: the `risk_limits` defaults (every rule on), so the risk rules' cost is included.
Throughput = execution reports (the records on oms.executions, garbage included) / time.

The broker and Postgres: see bench/trading_common.py. The machine may be shared: the load
average is printed before and after; CPU seconds of the flow process after its dataflow
started are printed too (less sensitive to other work than wall time).

Options added for issue 12:
- `--replay S`: recovery replay. A run (snapshots every 2 s) is SIGKILLed S seconds into its
            dataflow and restarted on the same recovery store; the restart's throughput over
            what it replays (the reports after the offsets of its last completed snapshot, read
            from the recovery store) is printed, to compare with the steady rate.
- `--stub-core`: BENCH ONLY, NOT THE REAL FLOW: the same run with the core replaced by a replay
            of its precomputed outputs (bench/stub_core.py): what the flow around the core
            (decoding, Bytewax, snapshots, the writers) allows with a much faster core.

Run:  uv run python bench/trading_flow.py [--rounds 2] [--seconds 60]
      [--order-rate 300] [--accounts 40] [--symbols 30] [--partitions 4] [--replay 8]
      [--stub-core]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from bench_kafka import bench_broker
from scale_market import _cpu_s, _dataflow_running
from stub_core import precompute
from trading_common import (
    REPO,
    OrderFlow,
    bench_settings,
    flow_env,
    order_flow,
    postgres_dsn,
    prepare,
    produce,
)

from schemas.catalogue import TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from sources.postgres.limits import load_trading_config
from sources.synthetic import MarketSpec
from tapeflow.core.models import ExecutionReport
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    ShardState,
    mark_of,
    on_market_inplace,
    on_report_inplace,
)
from tapeflow.runtime.recovery import resume_epoch
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings


def run_flow(settings: Settings, root: Path, stub: Path | None = None
             ) -> tuple[float, float, float]:
    """One batch run of `tapeflow run trading`: (wall s, dataflow s, dataflow CPU s).
    `stub`: the bench-only variant with the core replaced by a replay (bench/stub_core.py)."""
    cmd = [sys.executable, "-m", "tapeflow.cli", "run", "trading", "--batch"]
    if stub is not None:
        cmd = [sys.executable, str(REPO / "bench" / "stub_core.py"), str(stub), *cmd[3:]]
    t0 = time.monotonic()
    with (root / "flow.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=flow_env(settings), stdout=log,
                                stderr=subprocess.STDOUT)
    started: float | None = None
    startup_cpu = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # our own child, by its pid
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if started is None and _dataflow_running(proc.pid):
            started = time.monotonic()
            with contextlib.suppress(OSError):
                startup_cpu = _cpu_s(proc.pid)
        time.sleep(0.005)
    end = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"the flow exited with {proc.returncode}; see {root / 'flow.log'}")
    cpu = usage.ru_utime + usage.ru_stime - startup_cpu
    return end - t0, end - (started or t0), cpu


def snapshot_reports(home: Path, executions_topic: str) -> int:
    """Reports the recovery store's last completed snapshot has read: the sum of its
    oms.executions offsets (per partition, the newest snapshot before the resume epoch, as
    Bytewax resumes; tapeflow.runtime.recovery)."""
    store = home / "recovery" / "trading"
    resume = resume_epoch(store)
    assert resume is not None, "no recovery store"
    offsets: dict[str, tuple[int, int]] = {}
    for part in sorted(store.glob("part-*.sqlite3")):
        with closing(sqlite3.connect(part)) as conn:
            rows = conn.execute("SELECT state_key, snap_epoch, ser_change FROM snaps "
                                "WHERE step_id LIKE '%trading_in%' AND snap_epoch < ?",
                                (resume,)).fetchall()
        for key, epoch, ser in rows:
            if key.endswith(f"-{executions_topic}") and ser is not None and (
                    key not in offsets or epoch > offsets[key][0]):
                offsets[key] = (epoch, int(pickle.loads(ser) or 0))  # our own store
    return sum(max(offset, 0) for _epoch, offset in offsets.values())


def replay_run(settings: Settings, root: Path, n_exec: int, partitions: int,
               kill_after_s: float) -> tuple[int, float, float]:
    """Recovery replay: `tapeflow run trading --batch --snapshot-interval 2`, SIGKILLed
    `kill_after_s` after its dataflow started, then restarted on the same recovery store.
    Returns (reports the restart replays from its last snapshot, its dataflow seconds, its
    wall seconds from process start to exit): the replay's throughput."""
    cmd = [sys.executable, "-m", "tapeflow.cli", "run", "trading", "--batch",
           "--snapshot-interval", "2"]
    with (root / "killed.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=flow_env(settings), stdout=log,
                                stderr=subprocess.STDOUT)
    while not _dataflow_running(proc.pid):
        assert proc.poll() is None, "the flow exited before it was killed"
        time.sleep(0.005)
    time.sleep(kill_after_s)
    assert proc.poll() is None, "the flow finished before the kill: raise --seconds"
    proc.kill()  # SIGKILL, by pid: our own child
    proc.wait()
    done = snapshot_reports(settings.home, settings.topic(TOPIC_EXECUTIONS))
    wall, dataflow, _cpu = run_flow(settings, root)
    return n_exec - done, dataflow, wall


def core_fold(flow: OrderFlow, config: TradingConfig, shards: int,
              keys: dict[str, int]) -> float:
    """Seconds to fold the reports and marks through the pure shard steps (no I/O)."""
    states = [ShardState() for _ in range(shards)]
    marks = {id(t): mark_of(t) for t in flow.marks}
    t = time.perf_counter()
    for event in flow.arrivals:
        if isinstance(event, ExecutionReport):
            on_report_inplace(states[keys[event.account_id] % shards], event, config)
        else:
            mark = marks[id(event)]
            for state in states:
                on_market_inplace(state, mark, config)
    return time.perf_counter() - t


def decode_and_fold(flow: OrderFlow, codec: Codec, config: TradingConfig, shards: int,
                    keys: dict[str, int]) -> float:
    """Seconds to decode every record (Avro) and fold it, as the flow's stateful step does."""
    states = [ShardState() for _ in range(shards)]
    t = time.perf_counter()
    for topic, _key, value in flow.records:
        try:
            if topic == "md.marks":
                mark = mark_of(codec.decode(value, expect="Trade"))
                for state in states:
                    on_market_inplace(state, mark, config)
            else:
                report = codec.decode(value, expect="ExecutionReport")
                on_report_inplace(states[keys[report.account_id] % shards], report, config)
        except Exception:  # garbage frames: the flow dead-letters them
            continue
    return time.perf_counter() - t


def variants(opts: argparse.Namespace, settings: Settings, root: Path, *, dsn: str,
             flow: OrderFlow, config: TradingConfig | None, n_exec: int,
             stubbed: list[tuple[float, float, float]]) -> None:
    """The runs beside the flow's: a recovery replay, the bench-only stubbed core."""
    assert config is not None
    if opts.replay:
        replay_settings = settings.with_overrides(
            home=root / "replay-home", clickhouse_dsn=f"chdb://{root / 'replay-chdb'}",
            postgres_schema=f"{settings.postgres.schema}_replay")
        assert prepare(replay_settings, dsn, []).wait(timeout=300) == 0
        replayed, dataflow, wall = replay_run(replay_settings, root, n_exec,
                                              opts.partitions, opts.replay)
        print(f"recovery replay: killed {opts.replay:g} s into the dataflow; "
              f"the restart replayed {replayed:,} reports from its last snapshot in "
              f"{dataflow:6.2f} s of dataflow ({replayed / dataflow:7,.0f} exec/s; "
              f"{wall:6.2f} s with start-up and the snapshot's load: "
              f"{replayed / wall:7,.0f} exec/s)")
    if opts.stub_core:
        stub = root.parent / "stub-outputs.pickle"
        if not stub.exists():
            precompute(flow.arrivals, config, stub)
        stub_settings = settings.with_overrides(
            home=root / "stub-home", clickhouse_dsn=f"chdb://{root / 'stub-chdb'}",
            postgres_schema=f"{settings.postgres.schema}_stub")
        assert prepare(stub_settings, dsn, []).wait(timeout=300) == 0
        wall, dataflow, cpu = run_flow(stub_settings, root, stub)
        stubbed.append((wall, dataflow, cpu))
        print(f"BENCH-ONLY flow with the core STUBBED (a replay of its "
              f"outputs): dataflow {dataflow:6.2f} s ({n_exec / dataflow:7,.0f} exec/s), "
              f"CPU {cpu:5.1f} s ({n_exec / cpu:7,.0f} exec per CPU s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--order-rate", type=float, default=300.0)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--symbols", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--replay", type=float, default=0.0, metavar="S",
                        help="also measure a recovery replay: kill a run S seconds into its "
                             "dataflow, restart it from its last snapshot")
    parser.add_argument("--stub-core", action="store_true",
                        help="also run the BENCH-ONLY variant with the core replaced by a "
                             "replay of its outputs (bench/stub_core.py)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-trading-bench-") as tmp:
        tmpdir = Path(tmp)
        with bench_broker(tmpdir) as bootstrap:
            bench(bootstrap, tmpdir, opts)


def bench(bootstrap: str, tmpdir: Path, opts: argparse.Namespace) -> None:
    dsn = postgres_dsn()
    codec = Codec(LocalCatalogue.load())
    spec = MarketSpec(seed=21, n_symbols=opts.symbols, n_accounts=opts.accounts,
                      duration_s=opts.seconds, order_rate=opts.order_rate, trade_rate=200.0,
                      quote_rate=200.0, fault_rate=0.01)
    flow = order_flow(spec, codec)
    n_exec = sum(1 for topic, _, _ in flow.records if topic != "md.marks")
    print(f"input: {n_exec:,} execution reports ({len(flow.reports):,} decodable) and "
          f"{len(flow.marks):,} marks; {opts.accounts} accounts, {opts.symbols} symbols, "
          f"{opts.seconds:g} s of event time, {opts.partitions} partitions, broker {bootstrap}")

    # The first round's topics hold the input; every round reads the same topics (fresh
    # schema and ClickHouse per round; risk.alerts is appended to, deduplicated by id).
    base = bench_settings(bootstrap, dsn, tmpdir / "r0", opts.partitions)
    rounds: list[tuple[float, float, float]] = []
    stubbed: list[tuple[float, float, float]] = []
    config: TradingConfig | None = None
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")
    for r in range(opts.rounds):
        root = tmpdir / f"r{r}"
        root.mkdir(exist_ok=True)
        settings = base.with_overrides(
            home=root / "home", clickhouse_dsn=f"chdb://{root / 'chdb'}",
            postgres_schema=f"{base.postgres.schema}_{r}")
        chdb = prepare(settings, dsn, [])
        if r == 0:
            produce(settings, flow.records)
        assert chdb.wait(timeout=300) == 0, "ClickHouse init failed"
        if config is None:
            with connect_postgres(dsn, settings.postgres.schema) as conn:
                config = load_trading_config(conn)
        wall, dataflow, cpu = run_flow(settings, root)
        rounds.append((wall, dataflow, cpu))
        print(f"round {r + 1} flow: wall {wall:6.2f} s ({n_exec / wall:7,.0f} exec/s), dataflow "
              f"{dataflow:6.2f} s ({n_exec / dataflow:7,.0f} exec/s), dataflow CPU "
              f"{cpu:5.1f} s ({n_exec / cpu:7,.0f} exec per CPU s)")
        variants(opts, settings, root, dsn=dsn, flow=flow, config=config, n_exec=n_exec,
                 stubbed=stubbed)
    assert config is not None

    # Accounts map to partitions by the producer's key hash; the baseline only needs the
    # same number of shards with every account on one of them.
    keys = {acct: i for i, acct in enumerate(sorted({r.account_id for r in flow.reports}))}
    fold = min(core_fold(flow, config, opts.partitions, keys) for _ in range(3))
    decode = min(decode_and_fold(flow, codec, config, opts.partitions, keys) for _ in range(3))
    print(f"load average after: {os.getloadavg()}")
    wall = statistics.median(w for w, _, _ in rounds)
    dataflow = statistics.median(d for _, d, _ in rounds)
    cpu = statistics.median(c for _, _, c in rounds)
    print(f"baseline core fold (no I/O, no decoding): {fold:6.2f} s = "
          f"{len(flow.reports) / fold:9,.0f} exec/s")
    print(f"baseline decode + core fold:              {decode:6.2f} s = "
          f"{n_exec / decode:9,.0f} exec/s")
    print(f"median flow, dataflow:                    {dataflow:6.2f} s = "
          f"{n_exec / dataflow:9,.0f} exec/s ({dataflow / decode:.1f}x decode + fold)")
    print(f"median flow, wall (start-up included):    {wall:6.2f} s = {n_exec / wall:9,.0f} exec/s")
    print(f"median flow, dataflow CPU:                {cpu:6.2f} s = {n_exec / cpu:9,.0f} exec "
          f"per CPU s")
    if stubbed:
        dataflow = statistics.median(d for _, d, _ in stubbed)
        print(f"BENCH-ONLY, core stubbed, dataflow:       {dataflow:6.2f} s = "
              f"{n_exec / dataflow:9,.0f} exec/s (what the flow around the core allows)")


if __name__ == "__main__":
    main()
