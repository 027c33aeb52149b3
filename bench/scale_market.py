"""Throughput of the market flow: one process against two shard processes on 4 partitions.

Not a test: a measurement. Generates one synthetic market (default ~300k ticks, 120 symbols,
25 s of event time, 1 % faults), produces it once to fresh 4-partition topics (a new topic
prefix) on the local test broker, then times, in interleaved rounds:

- 1 process:  tapeflow run market --batch --no-recovery
- 2 shards:   tapeflow run market --batch --no-recovery --shard 0/2   (partitions 0, 2)
              tapeflow run market --batch --no-recovery --shard 1/2   (partitions 1, 3)
              started together; the time is until both have exited.

Each run writes into a fresh embedded ClickHouse (chDB) directory, each shard its own (chDB
allows one process per directory); the directories are initialised in a subprocess before the
clock starts. md.marks and tapeflow.dlq are appended to by every run (unused here).

Two times per run, median of the rounds: "wall" from process start to exit (imports, pre-flight
checks and Bytewax start-up included), and "dataflow" from the moment the first process's
Kafka source started (two or more librdkafka clients alive in it, polled in /proc every 5 ms)
to the last exit: it leaves out the ~3-4 s of imports, pre-flight checks and chDB start-up per
process. Throughput is ticks (the records on md.trades and md.quotes) per second.

The broker: `TAPEFLOW_TEST_KAFKA_BOOTSTRAP` if set and it answers without credentials, else a
LocalKafka without authentication (as the earlier figures were measured) started on a free port
under a temporary home (stopped at the end).

CPU seconds (user + sys) of each process after its dataflow started (wait4's total minus /proc's
count at that moment): on a machine where other work competes for
the two cores, wall times are noisy, while 1-process CPU / larger shard's CPU estimates the ratio
on two otherwise idle cores (an upper bound: it ignores the broker's and the OS's share).

Also printed: the ticks per partition and per shard (symbols hash to partitions and activity
is Zipf-distributed, so the larger shard bounds the ratio), and the best of the rounds (less
sensitive to other work on the machine than the median).

Run:  cd /work/main && uv run python bench/scale_market.py [--rounds 3] [--symbols 120]
      [--seconds 25] [--trade-rate 3000] [--quote-rate 9000] [--partitions 4]
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
import uuid
from pathlib import Path

from jobs.generate import produce_market
from jobs.init import create_topics
from jobs.local.kafka_broker import LocalKafka, broker_answers
from jobs.local.ports import free_port
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


def run_setup(settings: Settings, root: Path,
              shard_args: list[list[str]]) -> tuple[float, float, list[float]]:
    """Run one process per entry of `shard_args` concurrently; (wall s, dataflow s, CPU s of
    each process after its dataflow started)."""
    urls = [f"chdb://{root / f'chdb{i}'}" for i in range(len(shard_args))]
    subprocess.run([sys.executable, "-c", _INIT, *urls], check=True, cwd=REPO)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    base.update({
        "TAPEFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "TAPEFLOW_CLICKHOUSE_DATABASE": DATABASE,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--trade-rate", type=float, default=3000.0)
    parser.add_argument("--quote-rate", type=float, default=9000.0)
    parser.add_argument("--partitions", type=int, default=4,
                        help="Partitions per topic, a multiple of 2. More do not rebalance the "
                        "shards: p %% 2 of murmur2 %% 2N is the same split for every N.")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tapeflow-scale-") as tmp:
        tmpdir = Path(tmp)
        broker = None
        bootstrap = os.environ.get("TAPEFLOW_TEST_KAFKA_BOOTSTRAP") or ""
        if not bootstrap or not broker_answers(bootstrap):
            broker = LocalKafka(tmpdir / "broker-home", free_port(), secure=False)
            broker.start()
            bootstrap = broker.bootstrap
        try:
            settings = Settings(home=tmpdir / "home", kafka_bootstrap=bootstrap,
                                clickhouse_database=DATABASE, kafka_partitions=opts.partitions,
                                kafka_topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
            bench(settings, tmpdir, opts)
        finally:
            if broker is not None:
                broker.stop()


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
    shard_ticks = [sum(per_partition[i::2]) for i in range(2)]  # p % 2 == i
    print(f"ticks per partition {per_partition}; shard 0/2 {shard_ticks[0]:,}, shard 1/2 "
          f"{shard_ticks[1]:,} (the larger shard bounds the ratio at "
          f"{ticks / max(shard_ticks):.2f}x)")
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")

    setups: dict[str, list[list[str]]] = {
        "1 process": [[]],
        "2 shards": [["--shard", "0/2"], ["--shard", "1/2"]],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    cpus: dict[str, list[list[float]]] = {name: [] for name in setups}
    for r in range(opts.rounds):
        for name, shard_args in setups.items():
            root = tmpdir / f"r{r}-{name.replace(' ', '')}"
            root.mkdir()
            wall, flow, cpu = run_setup(settings, root, shard_args)
            results[name].append((wall, flow))
            cpus[name].append(cpu)
            print(f"round {r + 1} {name:9}: wall {wall:6.2f} s ({ticks / wall:9,.0f} ticks/s), "
                  f"dataflow {flow:6.2f} s ({ticks / flow:9,.0f} ticks/s), "
                  f"dataflow CPU s {' + '.join(f'{c:.1f}' for c in cpu)}")
    print(f"load average after: {os.getloadavg()}")
    med = {name: (statistics.median(w for w, _ in res), statistics.median(f for _, f in res))
           for name, res in results.items()}
    best = {name: (min(w for w, _ in res), min(f for _, f in res))
            for name, res in results.items()}
    for label, times in (("median", med), ("best", best)):
        for name, (wall, flow) in times.items():
            print(f"{label} {name:9}: wall {wall:6.2f} s = {ticks / wall:9,.0f} ticks/s; "
                  f"dataflow {flow:6.2f} s = {ticks / flow:9,.0f} ticks/s")
        one, two = times["1 process"], times["2 shards"]
        print(f"{label} ratio 2 shards / 1 process: wall {one[0] / two[0]:.2f}x, "
              f"dataflow {one[1] / two[1]:.2f}x")
    one_cpu = statistics.median(c[0] for c in cpus["1 process"])
    shard_cpu = [statistics.median(c[i] for c in cpus["2 shards"]) for i in range(2)]
    print(f"median dataflow CPU s: 1 process {one_cpu:.1f}; "
          f"shards {shard_cpu[0]:.1f} + {shard_cpu[1]:.1f}"
          f" -> ratio on two otherwise idle cores at most {one_cpu / max(shard_cpu):.2f}x "
          f"(1 process CPU / larger shard's CPU, after start-up)")


if __name__ == "__main__":
    main()
