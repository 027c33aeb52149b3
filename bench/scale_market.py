"""Scale-out of the market flow: one process against 2 and 4 shard processes on 8 partitions.

Not a test: a measurement. Generates one synthetic market (default ~300k ticks, 120 symbols,
25 s of event time, 1 % faults), produces it once to fresh 8-partition topics (a new topic
prefix) on the local test broker, then runs, in interleaved rounds:

- 1 process:  tapeflow run market --batch --no-recovery
- K shards:   tapeflow run market --batch --no-recovery --shard i/K, for i in 0..K-1 (the
              partitions p with p % K == i), started together; the time is until all have
              exited.

Each run writes into a fresh embedded ClickHouse (chDB) directory, each shard its own (chDB
allows one process per directory); the directories are initialised in a subprocess before the
clock starts. md.marks and tapeflow.dlq are appended to by every run (unused here).

The figure that matters on a 2-core machine is scale-out *efficiency*, not speed-up: the total
CPU seconds (user + sys, summed over a setup's processes, counted after each one's dataflow
started: wait4's total minus /proc's count at that moment) per million ticks, against one
process's. K shards can only be K times as fast as one process if they do not spend more
CPU in total than it does (the issue's aim: at most 1.15x). The embedded ClickHouse's own
threads count in each process's CPU.

Also printed: "dataflow" wall time from the moment the first process's Kafka source started
(two or more librdkafka clients alive in it, polled in /proc every 5 ms) to the last exit, the
ticks per shard (symbols hash to partitions and activity is Zipf-distributed, so the largest
shard bounds the wall-clock ratio), and whether the shards' tables (rows per table, FINAL, summed
over the shards, first round) equal one process's: each shard's output is its share of the
one-process output (tests/integration/test_market_scale.py compares them row by row).

The broker: see bench/bench_kafka.py.

Run:  uv run python bench/scale_market.py [--rounds 3] [--symbols 120] [--seconds 25]
      [--trade-rate 3000] [--quote-rate 9000] [--partitions 8] [--shards 2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_kafka import bench_broker

from jobs.generate import produce_market
from jobs.init import create_topics
from schemas.catalogue import TOPIC_QUOTES, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.topic_reader import end_offsets
from sources.synthetic import MarketSpec, generate_market
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATABASE = "tf_bench"
_INIT = f"""
import sys
from jobs.init import init_clickhouse
from tapeflow.settings import Settings
for url in sys.argv[1:]:
    init_clickhouse(Settings(clickhouse_dsn=url, clickhouse_database={DATABASE!r}))
"""




def _dataflow_running(pid: int) -> bool:
    """True once the dataflow's Kafka source runs: two or more librdkafka clients ("rdk:main"
    threads) at once. Pre-flight uses one admin client and closes it before Bytewax starts; the
    source then opens one consumer to list partitions and one per partition it reads."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    clients = 0
    for tid in tasks:
        with contextlib.suppress(OSError):
            clients += Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() == "rdk:main"
    return clients >= 2


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_setup(settings: Settings, root: Path, shard_args: list[list[str]],
              env: dict[str, str] | None = None) -> tuple[float, float, list[float]]:
    """Run one process per entry of `shard_args` concurrently (`env`: more variables); (wall
    s, dataflow s, CPU s of each process after its dataflow started)."""
    urls = [f"chdb://{root / f'chdb{i}'}" for i in range(len(shard_args))]
    subprocess.run([sys.executable, "-c", _INIT, *urls], check=True, cwd=REPO)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    base.update({
        "TAPEFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "TAPEFLOW_CLICKHOUSE_DATABASE": DATABASE,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "TAPEFLOW_METRICS_PORT": "0",
        **(env or {}),
    })
    cmd = [sys.executable, "-m", "tapeflow.cli", "run", "market", "--batch", "--no-recovery"]
    procs = []
    t0 = time.monotonic()
    for i, args in enumerate(shard_args):
        env = {**base, "TAPEFLOW_CLICKHOUSE_DSN": urls[i], "TAPEFLOW_HOME": str(root / f"h{i}")}
        with (root / f"flow{i}.log").open("ab") as log:
            procs.append(subprocess.Popen([*cmd, *args], cwd=REPO, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    started: list[float | None] = [None] * len(procs)
    cpu: list[float | None] = [None] * len(procs)
    startup_cpu = [0.0] * len(procs)
    codes: list[int | None] = [None] * len(procs)
    while None in codes:
        now = time.monotonic()
        for i, p in enumerate(procs):
            if codes[i] is not None:
                continue
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)  # our own child, by its pid
            if pid:
                codes[i] = p.returncode = os.waitstatus_to_exitcode(status)
                cpu[i] = usage.ru_utime + usage.ru_stime
            elif started[i] is None and _dataflow_running(p.pid):
                started[i] = now
                with contextlib.suppress(OSError):
                    startup_cpu[i] = _cpu_s(p.pid)
        time.sleep(0.005)
    end = time.monotonic()
    for i, code in enumerate(codes):
        if code != 0:
            raise SystemExit(f"run {shard_args[i]} exited with {code}; see {root}")
    first = min((s for s in started if s is not None), default=t0)
    return end - t0, end - first, [(c or 0.0) - u for c, u in zip(cpu, startup_cpu, strict=True)]


_COUNT = f"""
import json, sys
from tapeflow.services.clickhouse import open_clickhouse
out = {{}}
for url in sys.argv[1:]:
    client = open_clickhouse(url, {DATABASE!r})
    out[url] = {{t: client.query(f"SELECT count() FROM {{t}} FINAL").result_rows[0][0]
                for t in ("trades", "quotes", "rejected_ticks", "candles_1s", "candles_1m")}}
    client.close()
print(json.dumps(out))
"""


def table_counts(root: Path, processes: int) -> dict[str, int]:
    """Rows per table (FINAL), summed over the chDB directories of one setup's processes."""
    urls = [f"chdb://{root / f'chdb{i}'}" for i in range(processes)]
    done = subprocess.run([sys.executable, "-c", _COUNT, *urls], check=True, cwd=REPO,
                          capture_output=True, text=True)
    total: dict[str, int] = {}
    for counts in json.loads(done.stdout.strip().splitlines()[-1]).values():
        for table, n in counts.items():
            total[table] = total.get(table, 0) + n
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--trade-rate", type=float, default=3000.0)
    parser.add_argument("--quote-rate", type=float, default=9000.0)
    parser.add_argument("--partitions", type=int, default=8,
                        help="Partitions per topic, a multiple of every shard count.")
    parser.add_argument("--shards", default="2,4",
                        help="Shard counts to compare with one process (comma list).")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-scale-") as tmp, \
            bench_broker(Path(tmp)) as bootstrap:
        settings = Settings(home=Path(tmp) / "home", kafka_bootstrap=bootstrap,
                            clickhouse_database=DATABASE, kafka_partitions=opts.partitions,
                            kafka_topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
        bench(settings, Path(tmp), opts)


def bench(settings: Settings, tmpdir: Path, opts: argparse.Namespace) -> None:
    create_topics(settings)
    spec = MarketSpec(seed=11, n_symbols=opts.symbols, duration_s=opts.seconds,
                      trade_rate=opts.trade_rate, quote_rate=opts.quote_rate, fault_rate=0.01,
                      n_accounts=0)
    t = time.perf_counter()
    market = generate_market(spec)
    counts = produce_market(settings, market, Codec(LocalCatalogue.load()))
    ticks = counts[settings.topic(TOPIC_TRADES)] + counts[settings.topic(TOPIC_QUOTES)]
    produced_s = time.perf_counter() - t
    print(f"input: {ticks:,} ticks ({opts.symbols} symbols, {opts.seconds:g} s of market) on "
          f"{settings.kafka.partitions} partitions at {settings.kafka.bootstrap}"
          f"; made in {produced_s:.1f} s")
    per_partition = [0] * settings.kafka.partitions
    for topic in (TOPIC_TRADES, TOPIC_QUOTES):
        for partition, end in end_offsets(settings.kafka_config(), settings.topic(topic)).items():
            per_partition[partition] += end
    shard_counts = [int(k) for k in opts.shards.split(",")]
    print(f"ticks per partition {per_partition}")
    for k in shard_counts:
        shares = [sum(per_partition[i::k]) for i in range(k)]  # p % k == i
        print(f"  {k} shards: {shares} (the largest bounds the wall-clock ratio at "
              f"{ticks / max(shares):.2f}x)")
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")

    setups: dict[str, list[list[str]]] = {"1 process": [[]]}
    for k in shard_counts:
        setups[f"{k} shards"] = [["--shard", f"{i}/{k}"] for i in range(k)]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    cpus: dict[str, list[list[float]]] = {name: [] for name in setups}
    outputs: dict[str, dict[str, int]] = {}
    for r in range(opts.rounds):
        for name, shard_args in setups.items():
            root = tmpdir / f"r{r}-{name.replace(' ', '')}"
            root.mkdir()
            wall, flow, cpu = run_setup(settings, root, shard_args)
            results[name].append((wall, flow))
            cpus[name].append(cpu)
            if r == 0:
                outputs[name] = table_counts(root, len(shard_args))
            print(f"round {r + 1} {name:9}: wall {wall:6.2f} s ({ticks / wall:9,.0f} ticks/s), "
                  f"dataflow {flow:6.2f} s ({ticks / flow:9,.0f} ticks/s), "
                  f"dataflow CPU s {' + '.join(f'{c:.1f}' for c in cpu)} = "
                  f"{sum(cpu) / ticks * 1e6:.2f} per M ticks")
    print(f"load average after: {os.getloadavg()}")
    one_cpu = statistics.median(sum(c) for c in cpus["1 process"])
    for name, res in results.items():
        flow = statistics.median(f for _, f in res)
        total = statistics.median(sum(c) for c in cpus[name])
        same = "" if name == "1 process" else (
            "; tables (rows FINAL) equal to one process's" if outputs[name] ==
            outputs["1 process"] else f"; TABLES DIFFER: {outputs[name]} vs "
            f"{outputs['1 process']}")
        print(f"median {name:9}: dataflow {flow:6.2f} s = {ticks / flow:9,.0f} ticks/s; "
              f"total CPU {total / ticks * 1e6:.2f} s per million ticks = "
              f"{total / one_cpu:.2f}x one process's{same}")


if __name__ == "__main__":
    main()
