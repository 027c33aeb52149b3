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

Run:  cd /work/main && uv run python bench/trading_flow.py [--rounds 2] [--seconds 60]
      [--order-rate 300] [--accounts 40] [--symbols 30] [--partitions 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale_market import _cpu_s, _dataflow_running
from stub_core import precompute
from trading_common import (
    REPO,
    OrderFlow,
    bench_settings,
    flow_env,
    kafka_broker,
    order_flow,
    postgres_dsn,
    prepare,
    produce,
)

from schemas.catalogue import LocalCatalogue
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--order-rate", type=float, default=300.0)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--symbols", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--stub-core", action="store_true",
                        help="also run the BENCH-ONLY variant with the core replaced by a "
                             "replay of its outputs (bench/stub_core.py)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-trading-bench-") as tmp:
        tmpdir = Path(tmp)
        with kafka_broker(tmpdir) as bootstrap:
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
        if opts.stub_core:
            stub = tmpdir / "stub-outputs.pickle"
            if not stub.exists():
                precompute(flow.arrivals, config, stub)
            stub_settings = settings.with_overrides(
                home=root / "stub-home", clickhouse_dsn=f"chdb://{root / 'stub-chdb'}",
                postgres_schema=f"{settings.postgres.schema}_stub")
            assert prepare(stub_settings, dsn, []).wait(timeout=300) == 0
            wall, dataflow, cpu = run_flow(stub_settings, root, stub)
            stubbed.append((wall, dataflow, cpu))
            print(f"round {r + 1} BENCH-ONLY flow with the core STUBBED (a replay of its "
                  f"outputs): dataflow {dataflow:6.2f} s ({n_exec / dataflow:7,.0f} exec/s), "
                  f"CPU {cpu:5.1f} s ({n_exec / cpu:7,.0f} exec per CPU s)")
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
